package daemon_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
)

// pushBlob uploads data to repo app of the registry at url.
func pushBlob(t *testing.T, url string, data []byte) {
	t.Helper()
	sum := sha256.Sum256(data)
	resp, err := http.Post(url+"/v2/app/blobs/uploads/", "application/octet-stream", nil)
	must(t, err)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = url + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest=sha256:"+hex.EncodeToString(sum[:]), bytes.NewReader(data))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("push: %v %v", err, resp)
	}
	resp.Body.Close()
}

// TestRegistryBackedMount serves an image whose blob lives only in a
// registry: files read lazily equal the source, and reading one file
// fetches only that file's bytes.
func TestRegistryBackedMount(t *testing.T) {
	requireFUSE(t)
	work := t.TempDir()
	im := buildImage(t, work, "r", 8)
	blob, err := os.ReadFile(im.blobPath)
	must(t, err)
	var gets, bytesSent atomic.Int64
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			gets.Add(1)
			cw := &countingResponse{ResponseWriter: w, n: &bytesSent}
			inner.ServeHTTP(cw, r)
			return
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	pushBlob(t, srv.URL, blob)
	must(t, os.Remove(im.blobPath)) // only the registry has it now
	host := strings.TrimPrefix(srv.URL, "http://")
	cfg, err := config.Parse([]byte(fmt.Sprintf(`{"device":{"backend":{"type":"registry","config":{"scheme":"http","host":%q,"repo":"app","timeout":5,"retry_limit":2}},
		"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct","digest_validate":true,"amplify_io":0}`, host, filepath.Join(work, "cache"))))
	must(t, err)
	d := daemon.New(daemon.Options{})
	must(t, d.AddMount("/", im.boot, cfg))
	mnt := t.TempDir()
	must(t, d.Start(mnt, nil, 4))
	defer d.Stop()

	got, err := os.ReadFile(filepath.Join(mnt, "f03"))
	must(t, err)
	if !bytes.Equal(got, im.files["f03"]) {
		t.Fatal("f03 differs")
	}
	m, err := d.Mount("/")
	must(t, err)
	nid, _ := m.Image.LookupPath("f03")
	chunks, _ := m.Image.Chunks(nid)
	var want int64
	for _, c := range chunks {
		want += int64(c.Info.CompressedSize)
	}
	t.Logf("f03: %d chunks, %d compressed bytes; registry served %d GETs, %d bytes", len(chunks), want, gets.Load(), bytesSent.Load())
	if bytesSent.Load() != want {
		t.Fatalf("registry sent %d bytes for a file whose chunks hold %d", bytesSent.Load(), want)
	}
	for name, data := range im.files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Drop the page cache: re-reads reach nydusd, which must serve them
	// from its blob cache.
	unix.Sync()
	must(t, os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200))
	before := gets.Load()
	for name := range im.files {
		if _, err := os.ReadFile(filepath.Join(mnt, name)); err != nil {
			t.Fatal(err)
		}
	}
	if gets.Load() != before {
		t.Fatalf("re-reading cached files hit the registry %d times", gets.Load()-before)
	}
}

type countingResponse struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingResponse) Write(p []byte) (int, error) {
	k, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(k))
	return k, err
}
