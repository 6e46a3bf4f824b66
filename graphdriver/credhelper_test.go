package graphdriver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// TestRegistryLayerWithCredentialHelper: an image's backend.json names a
// registry with token auth for which the plugin's configuration holds no
// credentials; the nydusd the plugin starts finds them as docker would,
// through the credential helper docker's config.json names (on the
// plugin's PATH), and serves the layer.
func TestRegistryLayerWithCredentialHelper(t *testing.T) {
	requireMounts(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
	nydusd, image := buildBinaries(t)
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "greeting"), []byte("hello from a registry"), 0o644))
	work := t.TempDir()
	blobs, boot := filepath.Join(work, "blobs"), filepath.Join(work, "image.boot")
	if out, err := exec.Command(image, "create", "--log-level", "warn", "--bootstrap", boot, "--blob-dir", blobs, src).CombinedOutput(); err != nil {
		t.Fatalf("nydus-image create: %v\n%s", err, out)
	}
	ents, err := os.ReadDir(blobs)
	must(t, err)
	if len(ents) != 1 {
		t.Fatalf("%d blobs", len(ents))
	}
	blob, err := os.ReadFile(filepath.Join(blobs, ents[0].Name()))
	must(t, err)
	sum := sha256.Sum256(blob)
	if hex.EncodeToString(sum[:]) != ents[0].Name() {
		t.Fatalf("blob %s is not named by its digest", ents[0].Name())
	}

	// A registry whose reads need a token the realm grants for
	// alice:helper-pw only.
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var authOn atomic.Bool
	var refused, granted atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			_ = r.ParseForm()
			if r.Method != http.MethodPost || r.PostForm.Get("username") != "alice" || r.PostForm.Get("password") != "helper-pw" {
				http.Error(w, "denied", http.StatusUnauthorized)
				return
			}
			granted.Add(1)
			fmt.Fprint(w, `{"access_token":"granted-token","expires_in":300}`)
			return
		}
		if authOn.Load() && r.Header.Get("Authorization") != "Bearer granted-token" {
			refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	resp, err := http.Post(srv.URL+"/v2/app/blobs/uploads/?digest=sha256:"+ents[0].Name(), "application/octet-stream", strings.NewReader(string(blob)))
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("push: %v %v", err, resp)
	}
	resp.Body.Close()
	authOn.Store(true)

	// The helper and docker's config, in the plugin's environment.
	bin := t.TempDir()
	script := "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\necho \"$server\" >> " + filepath.Join(bin, "asked") +
		"\necho '{\"Username\":\"alice\",\"Secret\":\"helper-pw\"}'\n"
	must(t, os.WriteFile(filepath.Join(bin, "docker-credential-gonydustest"), []byte(script), 0o755))
	dc, _ := json.Marshal(map[string]any{"credHelpers": map[string]string{host: "gonydustest"}})
	must(t, os.WriteFile(filepath.Join(bin, "config.json"), dc, 0o600))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("DOCKER_CONFIG", bin)
	t.Setenv("IMAGE_PULL_AUTH", "")

	b, err := os.ReadFile(boot)
	must(t, err)
	backendJSON := fmt.Sprintf(`{"type":"registry","config":{"scheme":"http","host":%q,"repo":"app"}}`, host)
	layer := tarOf(t, dir("image/"), file("image/image.boot", string(b)), file("image/backend.json", backendJSON))
	d, _ := newDriver(t, WithNydusd(nydusd), WithNydusdConfig([]byte(`{"device":{"backend":{"type":"registry","config":{"host":"other.example","auth":"b3RoZXI6c2VjcmV0","timeout":5}}}}`)))
	must(t, d.Create("img", "", nil))
	if _, err := d.ApplyDiff(context.Background(), "img", "", layer); err != nil {
		t.Fatal(err)
	}
	must(t, d.CreateReadWrite("rw", "img", nil))
	root, err := d.Get("rw", "")
	must(t, err)
	got, err := os.ReadFile(filepath.Join(root, "greeting"))
	must(t, d.Put("rw"))
	if err != nil || string(got) != "hello from a registry" {
		t.Fatalf("greeting: %q, %v", got, err)
	}
	asked, _ := os.ReadFile(filepath.Join(bin, "asked"))
	if !strings.Contains(string(asked), host) || refused.Load() == 0 || granted.Load() == 0 {
		t.Fatalf("helper asked about %q; %d reads refused, %d tokens granted", asked, refused.Load(), granted.Load())
	}
	for _, id := range []string{"rw", "img"} {
		must(t, d.Remove(id))
	}
	t.Logf("helper asked about %s; %d unauthenticated reads refused, %d tokens granted", strings.TrimSpace(string(asked)), refused.Load(), granted.Load())
}
