package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// apiClient is an HTTP client of nydusd's API socket sock.
func apiClient(sock string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
}

// apiGet decodes the JSON answer of nydusd's API at path.
func apiGet(b *testing.B, sock, path string, v any) {
	b.Helper()
	c := apiClient(sock)
	resp, err := c.Get("http://nydusd" + path)
	if err != nil {
		b.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		b.Fatalf("GET %s: %v", path, err)
	}
}

// fuseRequests returns nydusd's FUSE request counters.
func fuseRequests(b *testing.B, sock string) map[string]uint64 {
	var out struct {
		Requests map[string]uint64 `json:"requests"`
	}
	apiGet(b, sock, "/api/v1/metrics/fuse", &out)
	return out.Requests
}

// goHeapMiB returns nydusd's Go heap in use, after a garbage collection
// when gc is set.
func goHeapMiB(b *testing.B, sock string, gc bool) float64 {
	var out map[string]uint64
	path := "/api/v1/metrics/memory"
	if gc {
		path += "?gc=1"
	}
	apiGet(b, sock, path, &out)
	return float64(out["heap_inuse"]) / (1 << 20)
}

// saveHeapProfile writes nydusd's heap profile to
// $NYDUSD_BENCH_HEAPPROFILE/heap-name.pprof when that variable names a
// directory (read it with go tool pprof).
func saveHeapProfile(b *testing.B, sock, name string) {
	b.Helper()
	dir := os.Getenv("NYDUSD_BENCH_HEAPPROFILE")
	if dir == "" {
		return
	}
	c := apiClient(sock)
	resp, err := c.Get("http://nydusd/api/v1/metrics/memory?gc=1&profile=heap")
	if err != nil {
		b.Fatalf("heap profile: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("heap profile: %s %v", resp.Status, err)
	}
	p := filepath.Join(dir, "heap-"+name+".pprof")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("heap profile: %s", p)
}

// reqDelta formats the requests counted between two snapshots and returns
// their number, FORGETs (per inode, unanswered) excluded.
func reqDelta(before, after map[string]uint64) (uint64, string) {
	var n uint64
	var parts []string
	for op, v := range after {
		if d := v - before[op]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s:%d", op, d))
			if op != "forget" {
				n += d
			}
		}
	}
	sort.Strings(parts)
	return n, strings.Join(parts, " ")
}

// startNydusdAPI starts nydusd over /dev/fuse with the settings
// (localfs, digest_validate) and an API socket.
func startNydusdAPI(b *testing.B, nydusd, boot, blobs, mnt string, extra ...string) (pid int, sock string, stop func()) {
	dir := b.TempDir()
	sock = filepath.Join(dir, "api.sock")
	doc := fmt.Sprintf(`{"device":{"backend":{"type":"localfs","config":{"dir":%q}},"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct","digest_validate":true,"enable_xattr":true}`, blobs, dir)
	pid, stop = startNydusdConfig(b, nydusd, doc, boot, mnt, append([]string{"--apisock", sock}, extra...)...)
	for range 100 {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return pid, sock, stop
}

// findWalk runs find(1) as the issue does and returns its time.
func findWalk(b *testing.B, root string) time.Duration {
	cmd := exec.Command("find", ".", "-printf", "%s %m %U\n")
	cmd.Dir = root
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("find in %s: %v: %.200s", root, err, out)
	}
	return time.Since(start)
}

// BenchmarkWalkGoTree compares metadata walks of the Go toolchain tree
// through kernel EROFS (export --block) and nydusd, in the same run: find(1) printing size, mode and owner, and a Go walk lstat-ing
// every path; cold (page, dentry and inode caches dropped) and warm (best
// of three). Ratios are nydusd's time over the kernel's (targets: cold
// <= 2, warm <= 1.2), measured over /dev/fuse and over io_uring
// (sub-benchmarks devfuse and uring). It also reports nydusd's FUSE
// requests per walk, and its RSS and Go heap after the walks.
func BenchmarkWalkGoTree(b *testing.B) {
	requireBenchRoot(b)
	if _, err := exec.LookPath("find"); err != nil {
		b.Skip("find(1) not installed")
	}
	goroot := runtime.GOROOT() //nolint:staticcheck // the tree of the toolchain running this test, which is on this machine
	if _, err := os.Stat(filepath.Join(goroot, "src")); err != nil {
		b.Skipf("no Go source tree at %s: %v", goroot, err)
	}
	image, nydusd := benchBinaries(b)
	work := b.TempDir()
	blobs, boot := filepath.Join(work, "blobs"), filepath.Join(work, "image.boot")
	runCmd(b, image, "create", "--log-level", "warn", "--type", "dir-rafs", "--compressor", "zstd", "--bootstrap", boot, "--blob-dir", blobs, goroot)
	kmnt := mountKernelEROFS(b, image, boot, blobs, work)
	b.ResetTimer()
	overTransports(b, func(b *testing.B, mode string) {
		fmnt := filepath.Join(b.TempDir(), "fuse")
		os.MkdirAll(fmnt, 0o755)
		pid, sock, stop := startNydusdAPI(b, nydusd, boot, blobs, fmnt, "--fuse-io-uring", mode)
		defer stop()
		benchWalks(b, kmnt, fmnt, pid, sock)
	})
}

// benchWalks measures the walks of the nydusd mount fmnt (process pid, API
// socket sock) against the kernel mount kmnt.
func benchWalks(b *testing.B, kmnt, fmnt string, pid int, sock string) {
	type measure struct {
		name string
		walk func(*testing.B, string) time.Duration
	}
	for range b.N {
		for _, m := range []measure{{"find", findWalk}, {"stat", walkStat}} {
			// Cold: one run each, interleaved, after dropping the caches.
			dropCaches(b)
			kCold := m.walk(b, kmnt)
			dropCaches(b)
			r0 := fuseRequests(b, sock)
			fCold := m.walk(b, fmnt)
			r1 := fuseRequests(b, sock)
			// Warm: best of three, interleaved.
			kWarm, fWarm := time.Duration(1<<62), time.Duration(1<<62)
			for range 3 {
				kWarm = min(kWarm, m.walk(b, kmnt))
				fWarm = min(fWarm, m.walk(b, fmnt))
			}
			r2 := fuseRequests(b, sock)
			nCold, cold := reqDelta(r0, r1)
			nWarm, warm := reqDelta(r1, r2)
			b.ReportMetric(fCold.Seconds()/kCold.Seconds(), m.name+"_cold_x_kernel")
			b.ReportMetric(fWarm.Seconds()/kWarm.Seconds(), m.name+"_warm_x_kernel")
			b.ReportMetric(float64(nCold), m.name+"_cold_requests")
			b.ReportMetric(float64(nWarm)/3, m.name+"_warm_requests")
			b.Logf("%s: cold %v vs kernel %v (%.2fx), warm %v vs %v (%.2fx); requests: cold walk %d [%s], 3 warm walks %d [%s]",
				m.name, fCold.Round(time.Millisecond), kCold.Round(time.Millisecond), fCold.Seconds()/kCold.Seconds(),
				fWarm.Round(time.Millisecond), kWarm.Round(time.Millisecond), fWarm.Seconds()/kWarm.Seconds(), nCold, cold, nWarm, warm)
		}
	}
	b.StopTimer()
	rss, heap := float64(rssKiB(b, pid))/1024, goHeapMiB(b, sock, false)
	b.ReportMetric(rss, "MiB_rss")
	b.ReportMetric(heap, "MiB_go_heap")
	b.Logf("nydusd after the walks: RSS %.1f MiB, Go heap in use %.1f MiB", rss, heap)
}
