package convert

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gonydus/nydus/storage/backend"
)

// tokenAuth puts a registry behind distribution-style token auth: /v2/
// requests need a bearer token from /token, which issues them to user and
// pass (Basic on GET, or an OAuth2 POST password grant) or to the refresh
// token (OAuth2 POST refresh_token grant).
type tokenAuth struct {
	user, pass, refresh string

	mu       sync.Mutex
	tokens   map[string]bool
	grants   map[string]int // "GET basic", "POST password", "POST refresh_token", "denied"
	rejected atomic.Int64
}

func (a *tokenAuth) wrap(host string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				a.serveToken(w, r)
				return
			}
			tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			a.mu.Lock()
			ok := a.tokens[tok]
			a.mu.Unlock()
			if !ok {
				a.rejected.Add(1)
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="http://%s/token",service="test"`, host))
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (a *tokenAuth) serveToken(w http.ResponseWriter, r *http.Request) {
	grant, field := "denied", "token"
	switch r.Method {
	case http.MethodGet:
		if u, p, ok := r.BasicAuth(); ok && u == a.user && p == a.pass {
			grant = "GET basic"
		}
	case http.MethodPost:
		field = "access_token"
		if err := r.ParseForm(); err == nil {
			switch r.PostForm.Get("grant_type") {
			case "password":
				if r.PostForm.Get("username") == a.user && r.PostForm.Get("password") == a.pass {
					grant = "POST password"
				}
			case "refresh_token":
				if a.refresh != "" && r.PostForm.Get("refresh_token") == a.refresh {
					grant = "POST refresh_token"
				}
			}
		}
	}
	a.mu.Lock()
	a.grants[grant]++
	a.mu.Unlock()
	if grant == "denied" {
		http.Error(w, `{"errors":[{"code":"DENIED"}]}`, http.StatusUnauthorized)
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	a.mu.Lock()
	a.tokens[tok] = true
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{field: tok, "expires_in": 300})
}

func (a *tokenAuth) granted(kind string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.grants[kind]
}

// writeCredentialHelper writes docker-credential-gonydustest into a new
// directory put on PATH: it answers "get" with user and secret and logs
// the servers it is asked about.
func writeCredentialHelper(t *testing.T, user, secret string) (asked func() []string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "asked")
	answer, _ := json.Marshal(map[string]string{"Username": user, "Secret": secret})
	script := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\necho \"$server\" >> '%s'\nprintf '%%s\\n' '%s'\n", log, answer)
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-gonydustest"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return func() []string {
		b, _ := os.ReadFile(log)
		return strings.Fields(string(b))
	}
}

// TestCredentialHelperEndToEnd: with only a docker config naming a
// credential helper (credHelpers or credsStore) and the helper on PATH,
// nydusify pushes a source, converts it (pull and push) and checks it
// (reading chunks through nydusd's registry backend) against a registry
// with token auth; then nydusd's registry backend, configured without any
// auth, reads a converted blob by the same docker config. The helper
// answers a password, or user "<token>" and an identity token, which
// every client trades by the OAuth2 refresh_token grant.
func TestCredentialHelperEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name, user, secret, store string
		grant                     string // the only kind of grant the token server may see
		grantsAlso                string // go-containerregistry asks by GET with Basic auth
	}{
		{name: "credHelpers-password", user: "alice", secret: "pw", store: "credHelpers", grant: "POST password", grantsAlso: "GET basic"},
		{name: "credsStore-identitytoken", user: "<token>", secret: "refresh-1", store: "credsStore", grant: "POST refresh_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := writeCredentialHelper(t, tc.user, tc.secret)
			reg := newTestRegistry(t)
			auth := &tokenAuth{user: "alice", pass: "pw", refresh: "refresh-1", tokens: map[string]bool{}, grants: map[string]int{}}
			reg.wrap = auth.wrap(reg.host)
			cfg := map[string]any{"credsStore": "gonydustest"}
			if tc.store == "credHelpers" {
				cfg = map[string]any{"credHelpers": map[string]string{reg.host: "gonydustest"}}
			}
			dir := t.TempDir()
			raw, _ := json.Marshal(cfg)
			if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("DOCKER_CONFIG", dir)
			t.Setenv("IMAGE_PULL_AUTH", "")

			pushSource(t, reg, "app", true)
			ctx := context.Background()
			res, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:nydus"), WithChunkSize(0x10000),
				WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Check(ctx, reg.ref("app:nydus"), reg.ref("app:latest"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Compared || rep.DataBytes == 0 {
				t.Fatalf("check report %+v", rep)
			}

			// nydusd's registry backend, no auth configured: docker config.
			be, err := backend.New("registry", json.RawMessage(fmt.Sprintf(`{"host":%q,"repo":"app","scheme":"http"}`, reg.host)))
			if err != nil {
				t.Fatal(err)
			}
			defer be.Close()
			blob := res.Blobs[0]
			b, err := be.Open(ctx, blob.Digest.String())
			if err != nil {
				t.Fatal(err)
			}
			data := make([]byte, blob.Size)
			if n, err := b.ReadAt(ctx, data, 0); int64(n) != blob.Size || (err != nil && !errors.Is(err, io.EOF)) {
				t.Fatalf("blob read: %d of %d, %v", n, blob.Size, err)
			}
			if sum := sha256.Sum256(data); "sha256:"+hex.EncodeToString(sum[:]) != blob.Digest.String() {
				t.Fatal("blob read through nydusd's backend has the wrong digest")
			}

			if !slices.Contains(asked(), reg.host) {
				t.Fatalf("helper asked about %q, not %s", asked(), reg.host)
			}
			if auth.rejected.Load() == 0 || auth.granted(tc.grant) == 0 {
				t.Fatalf("token server: %d unauthenticated requests refused, grants %v; want %q grants", auth.rejected.Load(), auth.grants, tc.grant)
			}
			for kind, n := range auth.grants {
				if kind != tc.grant && kind != tc.grantsAlso && n > 0 {
					t.Fatalf("token server saw %d %q requests (grants %v)", n, kind, auth.grants)
				}
			}
			t.Logf("helper asked %d times; token grants %v; %d requests refused without a token", len(asked()), auth.grants, auth.rejected.Load())
		})
	}
}
