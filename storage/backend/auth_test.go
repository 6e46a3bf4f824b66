package backend

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/faultproxy"
	"github.com/gonydus/nydus/internal/testregistry"
)

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// TestRegistryBearerPOST: with credentials the token comes from an OAuth2
// POST form; a token server that refuses POST is asked by GET from then
// on.
func TestRegistryBearerPOST(t *testing.T) {
	for _, getOnly := range []bool{false, true} {
		t.Run(fmt.Sprint("getOnly=", getOnly), func(t *testing.T) {
			opts := []testregistry.Option{testregistry.WithBearer("alice", "pw", time.Hour, 3600)}
			if getOnly {
				opts = append(opts, testregistry.WithTokenGETOnly())
			}
			reg := testregistry.Start(t, opts...)
			data := randomData(100_000)
			id := reg.Push(t, "app", data)
			b := newReg(t, reg.Host, map[string]any{"auth": basicAuth("alice", "pw")})
			readBack(t, b, id, data)
			reg.ExpireTokens()
			readBack(t, b, id, data)
			post, get := reg.TokenRequests()
			switch {
			case !getOnly && (post != 2 || get != 0):
				t.Fatalf("token requests: %d POST, %d GET; want 2 POST", post, get)
			case getOnly && (post != 1 || get != 2):
				t.Fatalf("token requests: %d POST, %d GET; want 1 POST then GET only", post, get)
			}
		})
	}
}

// TestRegistryAnonymousBearer: an anonymous token by GET, no credentials.
func TestRegistryAnonymousBearer(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithBearer("", "", time.Hour, 0))
	data := randomData(30_000)
	id := reg.Push(t, "app", data)
	readBack(t, newReg(t, reg.Host, nil), id, data)
	if post, get := reg.TokenRequests(); post != 0 || get != 1 {
		t.Fatalf("token requests: %d POST, %d GET; want one GET (expires_in missing = 600 s)", post, get)
	}
}

// TestRegistryTokenExpiryMidRead: tokens that the server drops early (or
// that a proxy starts refusing after a while, or after some uses) are
// replaced transparently between and during a sequence of reads.
func TestRegistryTokenExpiryMidRead(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithBearer("alice", "pw", 150*time.Millisecond, 3600))
	data := randomData(400_000)
	id := reg.Push(t, "app", data)
	p := faultproxy.New(t, reg.URL)
	p.SetBandwidth(1 << 20) // each read takes ~50 ms: tokens age across reads
	b := newReg(t, p.Host(), map[string]any{"auth": basicAuth("alice", "pw"), "retry_limit": 0})
	ctx := context.Background()
	blob, _ := b.Open(ctx, id)
	reads := func() {
		t.Helper()
		for i := range 12 {
			off := (i * 13_001) % (len(data) - 50_000)
			buf := make([]byte, 50_000)
			if k, err := blob.ReadAt(ctx, buf, int64(off)); err != nil || k != len(buf) || !bytes.Equal(buf, data[off:off+len(buf)]) {
				t.Fatalf("read %d at %d: %d %v", i, off, k, err)
			}
		}
	}
	byAge := p.Add(faultproxy.Rule{Path: faultproxy.BlobPath, AuthAge: 100 * time.Millisecond, Fault: faultproxy.Fault{Status: http.StatusUnauthorized}})
	reads()
	p.Clear()
	byUse := p.Add(faultproxy.Rule{Path: faultproxy.BlobPath, AuthUses: 3, Fault: faultproxy.Fault{Status: http.StatusUnauthorized}})
	reads()
	post, get := reg.TokenRequests()
	if byAge.Count() == 0 || byUse.Count() == 0 || post < 4 {
		t.Fatalf("expired-token 401s: by age %d, by use %d; token requests %d POST %d GET", byAge.Count(), byUse.Count(), post, get)
	}
	t.Logf("401s by age %d, by use %d; %d token requests", byAge.Count(), byUse.Count(), post+get)
}

func TestRegistryBasicAndCredentialSources(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithBasic("bob", "pw"))
	data := randomData(10_000)
	id := reg.Push(t, "app", data)
	readBack(t, newReg(t, reg.Host, map[string]any{"auth": basicAuth("bob", "pw")}), id, data)

	// IMAGE_PULL_AUTH overrides a wrong configured auth.
	env := func(k string) string {
		if k == "IMAGE_PULL_AUTH" {
			return basicAuth("bob", "pw")
		}
		return ""
	}
	readBack(t, newReg(t, reg.Host, map[string]any{"auth": basicAuth("bob", "bad")}, WithEnv(env)), id, data)

	// docker's config.json, by DOCKER_CONFIG and by HOME.
	home := t.TempDir()
	dir := filepath.Join(home, ".docker")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`{"auths":{"other.example":{"auth":"eDp5"},%q:{"auth":%q}}}`, reg.Host, basicAuth("bob", "pw"))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"DOCKER_CONFIG", "HOME"} {
		val := map[string]string{"DOCKER_CONFIG": dir, "HOME": home}[key]
		readBack(t, newReg(t, reg.Host, nil, WithEnv(func(k string) string {
			if k == key {
				return val
			}
			return ""
		})), id, data)
	}

	// No credentials: a clear 401.
	blob, _ := newReg(t, reg.Host, map[string]any{"retry_limit": 0}).Open(context.Background(), id)
	if _, err := blob.ReadAt(context.Background(), make([]byte, 10), 0); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("read without credentials: %v", err)
	}
}

func TestRegistryToken(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithBearer("x", "y", time.Hour, 0))
	data := randomData(10_000)
	id := reg.Push(t, "app", data)
	reg.AddToken("preset-token")
	readBack(t, newReg(t, reg.Host, map[string]any{"registry_token": "preset-token"}), id, data)
	if post, get := reg.TokenRequests(); post+get != 0 {
		t.Fatal("registry_token should be used as is")
	}
}

// TestSecretsNeverLogged: a failing authenticated read reports clearly,
// and neither the error nor debug logs carry the password, the base64
// auth or a token.
func TestSecretsNeverLogged(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithBearer("alice", "s3cret-pass", time.Hour, 3600))
	data := randomData(20_000)
	id := reg.Push(t, "app", data)
	p := faultproxy.New(t, reg.URL)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	auth := basicAuth("alice", "s3cret-pass")
	b := newReg(t, p.Host(), map[string]any{"auth": auth, "retry_limit": 2, "timeout": 1}, WithLogger(log))
	readBack(t, b, id, data) // a token is issued and used
	// Now every blob request is refused, and some bodies reset.
	p.Add(faultproxy.Rule{Path: faultproxy.BlobPath, Count: 1, Fault: faultproxy.Fault{Body: faultproxy.BodyReset, At: 10}})
	p.Add(faultproxy.Rule{Path: faultproxy.BlobPath, Fault: faultproxy.Fault{Status: http.StatusUnauthorized}})
	blob, _ := b.Open(context.Background(), id)
	_, err := blob.ReadAt(context.Background(), make([]byte, 10_000), 100)
	if err == nil {
		t.Fatal("read succeeded through a proxy refusing everything")
	}
	// A wrong password too.
	bad := newReg(t, reg.Host, map[string]any{"auth": basicAuth("alice", "wrong-pass"), "retry_limit": 1}, WithLogger(log))
	blob, _ = bad.Open(context.Background(), id)
	_, err2 := blob.ReadAt(context.Background(), make([]byte, 10), 0)
	if err2 == nil || !strings.Contains(err2.Error(), "token request") || !strings.Contains(err2.Error(), "401") || strings.Contains(err2.Error(), "attempts") {
		t.Fatalf("wrong password: %v (want a 401 from the token server, not retried)", err2)
	}
	secrets := append([]string{"s3cret-pass", "wrong-pass", auth, basicAuth("alice", "wrong-pass")}, reg.Tokens()...)
	for _, s := range secrets {
		for _, text := range []string{err.Error(), err2.Error(), logs.String()} {
			if strings.Contains(text, s) {
				t.Fatalf("secret %q leaked into %q", s, text)
			}
		}
	}
	t.Logf("errors: %v | %v", err, err2)
}
