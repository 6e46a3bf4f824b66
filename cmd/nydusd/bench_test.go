package main

import (
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/fuseuring"
	"github.com/gonydus/nydus/internal/testutil"
)

// benchBinaries builds nydus-image and nydusd into a temp dir.
func benchBinaries(b *testing.B) (image, nydusd string) {
	b.Helper()
	dir := b.TempDir()
	for _, c := range []string{"nydus-image", "nydusd"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, c), "../"+c).CombinedOutput(); err != nil {
			b.Fatalf("build %s: %v: %s", c, err, out)
		}
	}
	return filepath.Join(dir, "nydus-image"), filepath.Join(dir, "nydusd")
}

func requireBenchRoot(b *testing.B) {
	testutil.RequireRoot(b, "mounts EROFS and FUSE, drops page caches")
	testutil.RequireFUSE(b)
}

// writeBenchTree writes nfiles files of mixed sizes (text-like and random)
// totalling about total bytes.
func writeBenchTree(b *testing.B, root string, nfiles int, total int64) {
	rng := rand.New(rand.NewPCG(7, 8))
	avg := total / int64(nfiles)
	for i := range nfiles {
		n := int64(1 + rng.Int64N(2*avg))
		data := make([]byte, n)
		if i%3 == 0 {
			for k := range data {
				data[k] = byte(rng.UintN(256))
			}
		} else {
			for k := range data {
				data[k] = "abcdefgh \n"[rng.IntN(10)]
			}
		}
		p := filepath.Join(root, fmt.Sprintf("d%03d/f%05d", i%100, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// mountKernelEROFS exports the image (boot, blobs) as an EROFS block image
// in work and mounts it read-only with the kernel's EROFS driver; it
// returns the mount point (unmounted at the end of b).
func mountKernelEROFS(b *testing.B, image, boot, blobs, work string) string {
	erofsImg := filepath.Join(work, "image.erofs")
	runCmd(b, image, "export", "--log-level", "warn", "--block", "--bootstrap", boot, "--blob-dir", blobs, "--output", erofsImg)
	kmnt := filepath.Join(work, "kernel")
	os.MkdirAll(kmnt, 0o755)
	if out, err := exec.Command("mount", "-t", "erofs", "-o", "loop,ro", erofsImg, kmnt).CombinedOutput(); err != nil {
		b.Fatalf("kernel EROFS mount: %v %s", err, out)
	}
	b.Cleanup(func() { unix.Unmount(kmnt, unix.MNT_DETACH) })
	return kmnt
}

func runCmd(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

func dropCaches(b *testing.B) {
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200); err != nil {
		b.Skipf("cannot drop page caches: %v", err)
	}
}

// startNydusd mounts boot at mnt and returns a stop function and the pid.
func startNydusd(b *testing.B, nydusd, boot, blobs, cache, mnt string, extra ...string) (int, func()) {
	doc := fmt.Sprintf(`{"device":{"backend":{"type":"localfs","config":{"dir":%q}},"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct","digest_validate":false,"enable_xattr":true}`, blobs, cache)
	return startNydusdConfig(b, nydusd, doc, boot, mnt, extra...)
}

// startNydusdConfig mounts boot at mnt with the configuration doc and
// returns the pid and a stop function.
func startNydusdConfig(b *testing.B, nydusd, doc, boot, mnt string, extra ...string) (int, func()) {
	cfg := filepath.Join(b.TempDir(), "nydusd.json")
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(nydusd, append([]string{"--config", cfg, "--bootstrap", boot, "--mountpoint", mnt, "--log-level", "warn"}, extra...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			unix.Unmount(mnt, unix.MNT_DETACH)
			<-exited
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !mountedOver(mnt) {
		select {
		case <-exited:
			b.Fatalf("nydusd %v exited before mounting %s", extra, mnt)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			stop()
			b.Fatalf("nydusd %v did not mount %s within 10 s", extra, mnt)
		}
	}
	b.Cleanup(stop)
	return cmd.Process.Pid, stop
}

// mountedOver reports whether a file system is mounted at dir.
func mountedOver(dir string) bool {
	var st, pst unix.Stat_t
	return unix.Stat(dir, &st) == nil && unix.Stat(filepath.Dir(dir), &pst) == nil && st.Dev != pst.Dev
}

func listFiles(b *testing.B, root string) []string {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func readAll(b *testing.B, root string, files []string) (time.Duration, int64) {
	start := time.Now()
	var n int64
	buf := make([]byte, 1<<20)
	for _, f := range files {
		fh, err := os.Open(filepath.Join(root, f))
		if err != nil {
			b.Fatal(err)
		}
		k, err := io.CopyBuffer(io.Discard, fh, buf)
		fh.Close()
		if err != nil {
			b.Fatalf("%s: %v", f, err)
		}
		n += k
	}
	return time.Since(start), n
}

func randomReads(b *testing.B, root string, files []string, sizes map[string]int64, count int) time.Duration {
	rng := rand.New(rand.NewPCG(1, 1))
	buf := make([]byte, 4096)
	start := time.Now()
	for range count {
		f := files[rng.IntN(len(files))]
		fh, err := os.Open(filepath.Join(root, f))
		if err != nil {
			b.Fatal(err)
		}
		off := rng.Int64N(max(sizes[f], 1))
		if _, err := fh.ReadAt(buf, off); err != nil && err != io.EOF {
			b.Fatal(err)
		}
		fh.Close()
	}
	return time.Since(start)
}

func walkStat(b *testing.B, root string) time.Duration {
	start := time.Now()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		return unix.Lstat(p, &st)
	})
	if err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkNydusdVsKernel reads the same image through the kernel EROFS
// driver (export --block) and through nydusd, and reports nydusd's speed
// as a ratio of the kernel's (> 1 means nydusd is faster).
func BenchmarkNydusdVsKernel(b *testing.B) {
	requireBenchRoot(b)
	image, nydusd := benchBinaries(b)
	work := b.TempDir()
	src := filepath.Join(work, "src")
	writeBenchTree(b, src, 10000, 256<<20)
	blobs := filepath.Join(work, "blobs")
	boot := filepath.Join(work, "image.boot")
	runCmd(b, image, "create", "--log-level", "warn", "--bootstrap", boot, "--blob-dir", blobs, src)
	kmnt := mountKernelEROFS(b, image, boot, blobs, work)
	files := listFiles(b, src)
	sizes := map[string]int64{}
	for _, f := range files {
		st, _ := os.Stat(filepath.Join(src, f))
		sizes[f] = st.Size()
	}
	b.ResetTimer()
	overTransports(b, func(b *testing.B, mode string) {
		for range b.N {
			benchNydusdMode(b, nydusd, boot, blobs, kmnt, files, sizes, mode)
		}
	})
}

// overTransports runs bench once per FUSE transport, as a sub-benchmark
// given nydusd's --fuse-io-uring value: "devfuse" (plain /dev/fuse, what
// most kernels offer) and "uring" (FUSE over io_uring). The uring one
// skips, saying why, when the kernel cannot serve it now (no
// CONFIG_FUSE_IO_URING, or fuse.enable_uring=N: the benchmarks leave that
// switch as they find it).
func overTransports(b *testing.B, bench func(b *testing.B, uringMode string)) {
	b.Run("devfuse", func(b *testing.B) { bench(b, "off") })
	b.Run("uring", func(b *testing.B) {
		if err := fuseuring.Available(); err != nil {
			b.Skipf("FUSE over io_uring not measured: %v", err)
		}
		bench(b, "on")
	})
}

// benchNydusdMode measures one nydusd, with --fuse-io-uring=mode, against
// the kernel mount kmnt.
func benchNydusdMode(b *testing.B, nydusd, boot, blobs, kmnt string, files []string, sizes map[string]int64, mode string) {
	fmnt := filepath.Join(b.TempDir(), "fuse")
	os.MkdirAll(fmnt, 0o755)
	cache := b.TempDir()
	_, stop := startNydusd(b, nydusd, boot, blobs, cache, fmnt, "--fuse-io-uring", mode)
	// Cold: nydusd's cache is empty; measured once.
	dropCaches(b)
	kCold, n := readAll(b, kmnt, files)
	dropCaches(b)
	fCold, _ := readAll(b, fmnt, files) // fetch, decompress, verify, store
	// The rest: best of three runs each, interleaved, against noise.
	best := func(f func() time.Duration) time.Duration {
		d := f()
		for range 2 {
			d = min(d, f())
		}
		return d
	}
	read := func(root string, drop bool) func() time.Duration {
		return func() time.Duration {
			if drop {
				dropCaches(b)
			}
			d, _ := readAll(b, root, files)
			return d
		}
	}
	kWarm, fWarm := best(read(kmnt, true)), best(read(fmnt, true)) // nydusd: blob cache warm, page cache dropped
	kHot, fHot := best(read(kmnt, false)), best(read(fmnt, false)) // both in the page cache
	kRand := best(func() time.Duration { dropCaches(b); return randomReads(b, kmnt, files, sizes, 20000) })
	fRand := best(func() time.Duration { dropCaches(b); return randomReads(b, fmnt, files, sizes, 20000) })
	kWalk := best(func() time.Duration { dropCaches(b); return walkStat(b, kmnt) })
	fWalk := best(func() time.Duration { dropCaches(b); return walkStat(b, fmnt) })
	stop()

	mb := float64(n) / (1 << 20)
	b.ReportMetric(kCold.Seconds()/fCold.Seconds(), "x_kernel_cold")
	b.ReportMetric(kWarm.Seconds()/fWarm.Seconds(), "x_kernel_warm")
	b.ReportMetric(kHot.Seconds()/fHot.Seconds(), "x_kernel_pagecache")
	b.ReportMetric(kRand.Seconds()/fRand.Seconds(), "x_kernel_rand4k")
	b.ReportMetric(fWalk.Seconds()/kWalk.Seconds(), "walk_time_vs_kernel")
	b.Logf("--fuse-io-uring=%s: %d files, %.0f MiB: cold %.0f vs kernel %.0f MB/s (%.2fx); warm cache %.0f vs %.0f MB/s (%.2fx); page cache %.0f vs %.0f MB/s (%.2fx); "+
		"random 4K x20000 %v vs %v (%.2fx); find+stat %v vs %v (%.2fx the kernel's time)",
		mode, len(files), mb, mb/fCold.Seconds(), mb/kCold.Seconds(), kCold.Seconds()/fCold.Seconds(),
		mb/fWarm.Seconds(), mb/kWarm.Seconds(), kWarm.Seconds()/fWarm.Seconds(),
		mb/fHot.Seconds(), mb/kHot.Seconds(), kHot.Seconds()/fHot.Seconds(),
		fRand.Round(time.Millisecond), kRand.Round(time.Millisecond), kRand.Seconds()/fRand.Seconds(),
		fWalk.Round(time.Millisecond), kWalk.Round(time.Millisecond), fWalk.Seconds()/kWalk.Seconds())
}

func rssKiB(b *testing.B, pid int) int64 {
	return statusKiB(b, pid, "VmRSS:")
}

// cpuTime returns the user and system CPU time pid has used
// (/proc/pid/stat, in clock ticks of 10 ms).
func cpuTime(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name: state is field 3,
	// utime 14 and stime 15.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, data)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// statusKiB returns the field (e.g. "RssAnon:") of /proc/pid/status in KiB.
func statusKiB(b *testing.B, pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkNydusdRSS100k reports nydusd's resident memory and Go heap
// after a stat of every file of a 100k-file image (target: RSS <= 50 MB),
// and again once the kernel has forgotten every inode (caches dropped:
// FORGET must free what the lookups took); over /dev/fuse and over
// io_uring (sub-benchmarks devfuse and uring). The lstat walk is timed
// against kernel EROFS of the same image in the same run, cold (caches
// dropped) and warm (best of three): ratios are nydusd's time over the
// kernel's.
func BenchmarkNydusdRSS100k(b *testing.B) {
	requireBenchRoot(b)
	image, nydusd := benchBinaries(b)
	work := b.TempDir()
	src := filepath.Join(work, "src")
	const nfiles = 100_000
	for i := range nfiles {
		p := filepath.Join(src, fmt.Sprintf("d%03d/f%06d", i%1000, i))
		if i%1000 == 0 || i < 1000 {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		if err := os.WriteFile(p, []byte(strconv.Itoa(i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	blobs := filepath.Join(work, "blobs")
	boot := filepath.Join(work, "image.boot")
	runCmd(b, image, "create", "--log-level", "warn", "--bootstrap", boot, "--blob-dir", blobs, src)
	os.RemoveAll(src)
	kmnt := mountKernelEROFS(b, image, boot, blobs, work)
	b.ResetTimer()
	overTransports(b, func(b *testing.B, mode string) {
		for range b.N {
			benchRSS100k(b, nydusd, boot, blobs, kmnt, nfiles, mode)
		}
	})
}

// benchRSS100k is one round of BenchmarkNydusdRSS100k with
// --fuse-io-uring=mode.
func benchRSS100k(b *testing.B, nydusd, boot, blobs, kmnt string, nfiles int, mode string) {
	mnt := filepath.Join(b.TempDir(), "fuse")
	os.MkdirAll(mnt, 0o755)
	start := time.Now()
	pid, sock, stop := startNydusdAPI(b, nydusd, boot, blobs, mnt, "--fuse-io-uring", mode)
	mountTime := time.Since(start)
	idle, idleHeap := rssKiB(b, pid), goHeapMiB(b, sock, true)
	dropCaches(b)
	kCold := walkStat(b, kmnt)
	dropCaches(b)
	r0, cpu0 := fuseRequests(b, sock), cpuTime(b, pid)
	walk := walkStat(b, mnt)
	r1, cpuWalk := fuseRequests(b, sock), cpuTime(b, pid)-cpu0
	after, afterHeap := rssKiB(b, pid), goHeapMiB(b, sock, true)
	saveHeapProfile(b, sock, "after-walk-"+mode)
	var ms map[string]uint64
	apiGet(b, sock, "/api/v1/metrics/memory", &ms)
	b.Logf("after the cold walk: RssAnon %d KiB, RssFile %d KiB; Go runtime: heap in use %d KiB, heap idle %d KiB (released %d KiB), stacks %d KiB, GC metadata %d KiB, other %d KiB, limit %d",
		statusKiB(b, pid, "RssAnon:"), statusKiB(b, pid, "RssFile:"), ms["heap_inuse"]>>10, ms["heap_idle"]>>10,
		ms["heap_released"]>>10, ms["stack_inuse"]>>10, ms["gc_sys"]>>10, ms["other_sys"]>>10, ms["memory_limit"])
	kWarm, fWarm := time.Duration(1<<62), time.Duration(1<<62)
	for range 3 {
		kWarm = min(kWarm, walkStat(b, kmnt))
		fWarm = min(fWarm, walkStat(b, mnt))
	}
	rw := fuseRequests(b, sock)
	// The kernel forgets every inode; FORGETs arrive asynchronously.
	dropCaches(b)
	deadline := time.Now().Add(20 * time.Second)
	var r2 map[string]uint64
	for {
		r2 = fuseRequests(b, sock)
		if r2["forget"]-rw["forget"] >= uint64(nfiles) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	forgot, forgotHeap := rssKiB(b, pid), goHeapMiB(b, sock, true)
	// The first read indexes the image's chunks (rafs, storage).
	data, _ := os.ReadFile(filepath.Join(mnt, "d042/f000042"))
	read, readHeap := rssKiB(b, pid), goHeapMiB(b, sock, true)
	saveHeapProfile(b, sock, "after-read-"+mode)
	stop()
	if string(data) != "42" {
		b.Fatalf("read back %q", data)
	}
	nWalk, walkReqs := reqDelta(r0, r1)
	nWarm, _ := reqDelta(r1, rw)
	_, forgets := reqDelta(rw, r2)
	perInode := (afterHeap - idleHeap) * (1 << 20) / float64(nfiles)
	b.ReportMetric(walk.Seconds()/kCold.Seconds(), "stat_cold_x_kernel")
	b.ReportMetric(fWarm.Seconds()/kWarm.Seconds(), "stat_warm_x_kernel")
	b.ReportMetric(cpuWalk.Seconds()*1000, "ms_nydusd_cpu_cold_walk")
	b.ReportMetric(float64(after)/1024, "MiB_rss_after_walk")
	b.ReportMetric(afterHeap, "MiB_heap_after_walk")
	b.ReportMetric(perInode, "B_heap_per_inode")
	b.ReportMetric(forgotHeap, "MiB_heap_after_forget")
	b.ReportMetric(float64(forgot)/1024, "MiB_rss_after_forget")
	b.Logf("100k files, --fuse-io-uring=%s: mounted in %v; idle RSS %.1f MiB, heap %.1f MiB; lstat of every path cold %v vs kernel %v (%.2fx; nydusd CPU %v), warm %v vs %v (%.2fx); requests: cold walk %d [%s], 3 warm walks %d; after the cold walk RSS %.1f MiB, heap %.1f MiB (%.0f B per inode); after the kernel forgot [%s]: RSS %.1f MiB, heap %.1f MiB; after reading one file: RSS %.1f MiB, heap %.1f MiB",
		mode, mountTime.Round(time.Millisecond), float64(idle)/1024, idleHeap,
		walk.Round(time.Millisecond), kCold.Round(time.Millisecond), walk.Seconds()/kCold.Seconds(), cpuWalk,
		fWarm.Round(time.Millisecond), kWarm.Round(time.Millisecond), fWarm.Seconds()/kWarm.Seconds(), nWalk, walkReqs, nWarm,
		float64(after)/1024, afterHeap, perInode, forgets, float64(forgot)/1024, forgotHeap, float64(read)/1024, readHeap)
}
