package convert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/testregistry"
	"github.com/gonydus/nydus/storage/backend"
)

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
			helper := testregistry.WriteCredentialHelper(t, tc.user, tc.secret)
			t.Setenv("PATH", helper.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
			asked := helper.Asked
			// Every request, pushes too, needs a token the realm grants
			// to alice:pw or for the refresh token.
			reg := newTestRegistry(t, testregistry.WithBearer("alice", "pw", time.Hour, 300),
				testregistry.WithRefreshToken("refresh-1"), testregistry.WithUploadAuth(), testregistry.WithRequestRealm())
			cfg := map[string]any{"credsStore": helper.Name}
			if tc.store == "credHelpers" {
				cfg = map[string]any{"credHelpers": map[string]string{reg.host: helper.Name}}
			}
			t.Setenv("DOCKER_CONFIG", testregistry.DockerConfig(t, cfg))
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
			grants := reg.reg.Grants()
			if reg.reg.Rejected() == 0 || grants[tc.grant] == 0 {
				t.Fatalf("token server: %d unauthenticated requests refused, grants %v; want %q grants", reg.reg.Rejected(), grants, tc.grant)
			}
			for kind, n := range grants {
				if kind != tc.grant && kind != tc.grantsAlso && n > 0 {
					t.Fatalf("token server saw %d %q requests (grants %v)", n, kind, grants)
				}
			}
			t.Logf("helper asked %d times; token grants %v; %d requests refused without a token", len(asked()), grants, reg.reg.Rejected())
		})
	}
}
