package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs/targzref"
)

// TestPrefetchPlanningOffLock: planning a mount's prefetch may read from
// the network (a zran blob's blob.meta); a registry that never answers
// must hold neither AddMount nor the daemon's other calls, and Stop ends
// the planning promptly.
func TestPrefetchPlanningOffLock(t *testing.T) {
	var files []tartest.Entry
	for i := range 3 {
		files = append(files, tartest.File(fmt.Sprintf("f%d", i), strings.Repeat(fmt.Sprintf("file %d\n", i), 5000)))
	}
	gz := tartest.TarGz(t, files...)
	var meta bytes.Buffer
	res, err := targzref.Build(context.Background(), bytes.NewReader(gz), &meta)
	testutil.Must(t, err)
	work := t.TempDir()
	boot := filepath.Join(work, "image.boot")
	testutil.Must(t, os.WriteFile(boot, res.Bootstrap, 0o644))

	stalled := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stalled:
		}
	}))
	defer srv.Close()
	defer close(stalled)
	host := strings.TrimPrefix(srv.URL, "http://")
	cfg, err := config.Parse([]byte(fmt.Sprintf(`{"device":{"backend":{"type":"registry","config":{"scheme":"http","host":%q,"repo":"app","timeout":60,"retry_limit":0}},
		"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct","fs_prefetch":{"enable":true,"threads_count":2,"prefetch_all":true}}`, host, filepath.Join(work, "cache"))))
	testutil.Must(t, err)

	d := daemon.New(daemon.Options{})
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- d.AddMount("/", boot, cfg) }()
	select {
	case err := <-done:
		testutil.Must(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("AddMount waited on the stalled registry for 10 s")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("AddMount took %v with a stalled registry", el)
	}
	got := make(chan int, 1)
	go func() { got <- len(d.Mounts()) }()
	select {
	case n := <-got:
		if n != 1 {
			t.Fatalf("%d mounts", n)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the daemon's lock is held while the prefetch is planned")
	}
	start = time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- d.Stop() }()
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("Stop waited on the stalled prefetch planning for 15 s")
	}
	t.Logf("AddMount returned at once; Stop took %v", time.Since(start).Round(time.Millisecond))
}
