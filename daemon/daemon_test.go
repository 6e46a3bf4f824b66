package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

type image struct {
	boot, blobDir, blobPath string
	files                   map[string][]byte
}

// buildImage writes a bootstrap and a blob (named by id) into dir: nfiles
// files of text, 20 KiB and up.
func buildImage(t *testing.T, dir, tag string, nfiles int) *image {
	t.Helper()
	files := map[string][]byte{}
	for i := range nfiles {
		files[fmt.Sprintf("f%02d", i)] = bytes.Repeat([]byte(fmt.Sprintf("%s file %d\n", tag, i)), 2000+i*100)
	}
	return buildImageOf(t, dir, tag, files)
}

// buildImageOf writes an image of files (in the root directory, zstd, 16
// KiB chunks) into dir.
func buildImageOf(t *testing.T, dir, tag string, files map[string][]byte) *image {
	t.Helper()
	im := &image{boot: filepath.Join(dir, tag+".boot"), blobDir: dir, files: files}
	var blob bytes.Buffer
	res, err := builder.Build(context.Background(), func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		for _, name := range slices.Sorted(maps.Keys(files)) {
			data := files[name]
			chunks, err := w.WriteFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				return nil, err
			}
			root.SetChild(name, &tree.Inode{Mode: layout.ModeReg | 0o644, Size: uint64(len(data)), Chunks: chunks})
		}
		return &tree.Tree{Root: root}, nil
	}, &blob, builder.WithChunkSize(0x4000), builder.WithTOC(false))
	if err != nil {
		t.Fatal(err)
	}
	im.blobPath = filepath.Join(dir, res.Blob.ID())
	testutil.Must(t, os.WriteFile(im.blobPath, blob.Bytes(), 0o644))
	testutil.Must(t, os.WriteFile(im.boot, res.Bootstrap, 0o644))
	return im
}

func localConfig(t *testing.T, blobDir, cacheDir string, validate bool) string {
	return fmt.Sprintf(`{"device":{"backend":{"type":"localfs","config":{"dir":%q}},"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct","digest_validate":%v,"enable_xattr":true}`,
		blobDir, cacheDir, validate)
}

type apiClient struct {
	t *testing.T
	c *http.Client
}

func newClient(t *testing.T, sock string) *apiClient {
	return &apiClient{t: t, c: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}}
}

func (a *apiClient) do(method, path string, body any) (int, []byte) {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://unix"+path, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.c.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestPseudoMountsAndAPI runs a shared daemon (no bootstrap at start),
// mounts two images through the API, reads both, unmounts one while the
// other is being read, and exercises every endpoint.
func TestPseudoMountsAndAPI(t *testing.T) { //nolint:revive // function-length: one scenario whose steps build on each other
	testutil.RequireFUSE(t)
	work := t.TempDir()
	a := buildImage(t, work, "a", 10)
	b := buildImage(t, work, "b", 12)
	d := daemon.New(daemon.Options{ID: "test", Supervisor: "/tmp/sup", Version: "test"})
	mnt := t.TempDir()
	exited := make(chan struct{})
	api := daemon.NewAPI(d, nil, func() { close(exited) })
	sock := filepath.Join(work, "api.sock")
	testutil.Must(t, api.Serve(sock))
	defer api.Close()
	testutil.Must(t, d.Start(mnt, nil, 4))
	defer d.Stop()
	st, err := os.Stat(sock)
	testutil.Must(t, err)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("api socket mode %v", st.Mode())
	}
	c := newClient(t, sock)

	code, body := c.do("GET", "/api/v1/daemon", nil)
	var info map[string]any
	testutil.Must(t, json.Unmarshal(body, &info))
	if code != 200 || info["state"] != "RUNNING" || info["id"] != "test" {
		t.Fatalf("daemon info %d %s", code, body)
	}
	for _, im := range []*image{a, b} {
		name := strings.TrimSuffix(filepath.Base(im.boot), ".boot")
		code, body = c.do("POST", "/api/v1/mount?mountpoint=/"+name, map[string]any{
			"source": im.boot, "fs_type": "rafs", "config": localConfig(t, work, filepath.Join(work, "cache-"+name), true)})
		if code != 204 {
			t.Fatalf("mount %s: %d %s", name, code, body)
		}
	}
	code, body = c.do("POST", "/api/v1/mount?mountpoint=/a", map[string]any{"source": a.boot, "config": localConfig(t, work, work, true)})
	if code != 400 || !strings.Contains(string(body), `"code":"UNDEFINED"`) {
		t.Fatalf("double mount: %d %s", code, body)
	}
	for name, im := range map[string]*image{"a": a, "b": b} {
		for f, want := range im.files {
			got, err := os.ReadFile(filepath.Join(mnt, name, f))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s/%s: %v", name, f, err)
			}
		}
	}
	_, body = c.do("GET", "/api/v1/daemon", nil)
	testutil.Must(t, json.Unmarshal(body, &info))
	coll, _ := info["backend_collection"].(map[string]any)
	if len(coll) != 2 || coll["/a"] == nil {
		t.Fatalf("backend_collection %s", body)
	}
	// Read b continuously while a is unmounted.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for f, want := range b.files {
				got, err := os.ReadFile(filepath.Join(mnt, "b", f))
				if err != nil || !bytes.Equal(got, want) {
					readErr <- fmt.Errorf("b/%s during umount of a: %w", f, err)
					return
				}
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if code, body = c.do("DELETE", "/api/v1/mount?mountpoint=/a", nil); code != 204 {
		t.Fatalf("umount a: %d %s", code, body)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	select {
	case err := <-readErr:
		t.Fatal(err)
	default:
	}
	if _, err := os.Stat(filepath.Join(mnt, "a", "f00")); err == nil {
		t.Fatal("a still visible after umount")
	}
	if code, _ = c.do("DELETE", "/api/v1/mount?mountpoint=/a", nil); code != 404 {
		t.Fatalf("second umount: %d", code)
	}
	// Metrics endpoints.
	for _, p := range []string{"/api/v1/metrics?id=/b", "/api/v1/metrics/files?id=/b", "/api/v1/metrics/pattern?id=/b",
		"/api/v1/metrics/backend?id=/b", "/api/v1/metrics/blobcache?id=/b", "/api/v1/metrics/inflight",
		"/api/v1/daemon/events", "/api/v1/daemon/backend?mountpoint=/b", "/api/v2/daemon"} {
		code, body = c.do("GET", p, nil)
		if code != 200 || !json.Valid(body) {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
	}
	_, body = c.do("GET", "/api/v1/metrics/blobcache?id=/b", nil)
	var bc map[string]any
	testutil.Must(t, json.Unmarshal(body, &bc))
	if bc["total"].(float64) == 0 || bc["data_all_ready"] != true { //nolint:revive // the JSON value is an any: this checks it is the boolean true
		t.Fatalf("blobcache metrics after reading everything: %s", body)
	}
	// Upstream's FsIoStats shape: nydus-snapshotter indexes these arrays.
	_, body = c.do("GET", "/api/v1/metrics?id=/b", nil)
	var fm struct {
		DataRead  uint64   `json:"data_read"`
		Blocks    []uint64 `json:"block_count_read"`
		Hits      []uint64 `json:"fop_hits"`
		Errors    []uint64 `json:"fop_errors"`
		Latency   []uint64 `json:"fop_cumulative_latency_total"`
		LatencyHi []uint64 `json:"read_latency_dist"`
	}
	testutil.Must(t, json.Unmarshal(body, &fm))
	if len(fm.Blocks) != 8 || len(fm.LatencyHi) != 8 || len(fm.Hits) != 15 || len(fm.Errors) != 15 || len(fm.Latency) != 15 {
		t.Fatalf("fs metrics arrays have other lengths than upstream's: %s", body)
	}
	var nBlocks, nLatency uint64
	for i := range 8 {
		nBlocks += fm.Blocks[i]
		nLatency += fm.LatencyHi[i]
	}
	if fm.DataRead == 0 || fm.Hits[4] == 0 || nBlocks != fm.Hits[4]+fm.Errors[4] || nLatency != nBlocks {
		t.Fatalf("fs metrics after reading everything: %s", body)
	}
	if code, body = c.do("GET", "/metrics", nil); code != 200 || !strings.Contains(string(body), `nydusd_backend_reads_total{mountpoint="/b"}`) {
		t.Fatalf("prometheus: %d %s", code, body)
	}
	if code, _ = c.do("GET", "/api/v1/metrics?id=/nope", nil); code != 404 {
		t.Fatalf("metrics of a missing mount: %d", code)
	}
	if code, _ = c.do("PUT", "/api/v1/daemon", map[string]string{"log_level": "debug"}); code != 204 {
		t.Fatalf("set log level: %d", code)
	}
	// A running daemon has a session: takeover is for one in INIT.
	if code, body = c.do("PUT", "/api/v1/daemon/fuse/takeover", nil); code != 400 || !strings.Contains(string(body), "INIT") {
		t.Fatalf("takeover while RUNNING: %d %s", code, body)
	}
	if code, _ = c.do("PUT", "/api/v1/daemon/start", nil); code != 204 {
		t.Fatalf("start: %d", code)
	}
	// Remount b with a's bootstrap (PUT swaps the image).
	if code, body = c.do("PUT", "/api/v1/mount?mountpoint=/b", map[string]any{"source": a.boot, "config": localConfig(t, work, filepath.Join(work, "cache-b2"), true)}); code != 204 {
		t.Fatalf("remount: %d %s", code, body)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "b", "f00")); err != nil || !bytes.Equal(got, a.files["f00"]) {
		t.Fatalf("after remount: %v", err)
	}
	if code, _ = c.do("PUT", "/api/v1/daemon/exit", nil); code != 204 {
		t.Fatalf("exit: %d", code)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("exit callback not called")
	}
}

// TestTamperedBlobEIO: with digest validation, the tampered chunk's file
// fails with EIO while other files read fine.
func TestTamperedBlobEIO(t *testing.T) {
	testutil.RequireFUSE(t)
	work := t.TempDir()
	im := buildImage(t, work, "t", 6)
	data, err := os.ReadFile(im.blobPath)
	testutil.Must(t, err)
	data[10] ^= 0xff // inside the first chunk of f00
	testutil.Must(t, os.WriteFile(im.blobPath, data, 0o644))
	cfg, err := config.Parse([]byte(localConfig(t, work, filepath.Join(work, "cache"), true)))
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{})
	testutil.Must(t, d.AddMount("/", im.boot, cfg))
	mnt := t.TempDir()
	testutil.Must(t, d.Start(mnt, nil, 4))
	defer d.Stop()
	_, err = os.ReadFile(filepath.Join(mnt, "f00"))
	if err == nil || !strings.Contains(err.Error(), syscall.EIO.Error()) {
		t.Fatalf("tampered f00: %v", err)
	}
	for f, want := range im.files {
		if f == "f00" {
			continue
		}
		got, err := os.ReadFile(filepath.Join(mnt, f))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

// TestPrefetchOnMount: with fs_prefetch enabled, mounting warms the whole
// cache in the background; afterwards the blob is all ready without a
// single user read.
func TestPrefetchOnMount(t *testing.T) {
	testutil.RequireFUSE(t)
	work := t.TempDir()
	im := buildImage(t, work, "p", 10)
	doc := fmt.Sprintf(`{"device":{"backend":{"type":"localfs","config":{"dir":%q}},"cache":{"type":"blobcache","config":{"work_dir":%q}}},
		"mode":"direct","fs_prefetch":{"enable":true,"threads_count":2,"merging_size":131072,"prefetch_all":true}}`, work, filepath.Join(work, "cache"))
	cfg, err := config.Parse([]byte(doc))
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{})
	testutil.Must(t, d.AddMount("/", im.boot, cfg))
	defer d.Stop()
	m, err := d.Mount("/")
	testutil.Must(t, err)
	testutil.Must(t, m.WaitPrefetch())
	s := m.Storage.Metrics().Snapshot()
	p, _ := m.PrefetchProgress()
	t.Logf("prefetch: %+v; cache: %d bytes prefetched in %d requests, all ready %v", p, s.PrefetchDataAmount, s.PrefetchRequestsCount, s.DataAllReady)
	if !s.DataAllReady || s.PrefetchDataAmount == 0 || s.Total != 0 {
		t.Fatalf("after prefetch: %+v", s)
	}
	// Every chunk is cached and validation is off: reads are spliced from
	// the cache file. They must return the right bytes.
	mnt := t.TempDir()
	testutil.Must(t, d.Start(mnt, nil, 4))
	for name, want := range im.files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s via the cache file: %v", name, err)
		}
	}
	if after := m.Storage.Metrics().Snapshot(); after.BackendReads != s.BackendReads {
		t.Fatalf("reads after a full prefetch went to the backend: %+v", after)
	}
}
