package daemon_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
)

// TestRegistryMountWithCredentialHelper: nydusd mounts an image whose blob
// lives in a registry with token auth, its configuration holding no
// credentials: docker's config.json names a credential helper on PATH,
// whose password the token realm takes in an OAuth2 form.
func TestRegistryMountWithCredentialHelper(t *testing.T) {
	requireFUSE(t)
	work := t.TempDir()
	im := buildImage(t, work, "c", 4)
	blob, err := os.ReadFile(im.blobPath)
	must(t, err)

	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var authOn atomic.Bool
	var mu sync.Mutex
	tokens := map[string]bool{}
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
			mu.Lock()
			tokens["tok"] = true
			mu.Unlock()
			fmt.Fprint(w, `{"access_token":"tok","expires_in":300}`)
			return
		}
		mu.Lock()
		ok := tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		mu.Unlock()
		if authOn.Load() && !ok {
			refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="test",scope="repository:app:pull"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	pushBlob(t, srv.URL, blob)
	must(t, os.Remove(im.blobPath))
	authOn.Store(true)
	host := strings.TrimPrefix(srv.URL, "http://")

	// The helper and docker's config.
	bin := t.TempDir()
	script := "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\necho \"$server\" >> " + filepath.Join(bin, "asked") +
		"\necho '{\"Username\":\"alice\",\"Secret\":\"helper-pw\"}'\n"
	must(t, os.WriteFile(filepath.Join(bin, "docker-credential-gonydustest"), []byte(script), 0o755))
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dc, _ := json.Marshal(map[string]any{"credHelpers": map[string]string{host: "gonydustest"}})
	must(t, os.WriteFile(filepath.Join(bin, "config.json"), dc, 0o600))
	t.Setenv("DOCKER_CONFIG", bin)
	t.Setenv("IMAGE_PULL_AUTH", "")

	cfg, err := config.Parse([]byte(fmt.Sprintf(`{"device":{"backend":{"type":"registry","config":{"scheme":"http","host":%q,"repo":"app","timeout":5,"retry_limit":1}},
		"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct","digest_validate":true}`, host, filepath.Join(work, "cache"))))
	must(t, err)
	d := daemon.New(daemon.Options{})
	must(t, d.AddMount("/", im.boot, cfg))
	mnt := t.TempDir()
	must(t, d.Start(mnt, nil, 4))
	defer d.Stop()
	for name, data := range im.files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	asked, _ := os.ReadFile(filepath.Join(bin, "asked"))
	if strings.TrimSpace(string(asked)) != host || refused.Load() == 0 || granted.Load() == 0 {
		t.Fatalf("helper asked about %q; %d requests refused, %d tokens granted", asked, refused.Load(), granted.Load())
	}
	t.Logf("helper asked once; %d unauthenticated requests refused; %d tokens granted", refused.Load(), granted.Load())
}
