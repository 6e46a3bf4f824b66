package overlay_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gonydus/nydus/overlay"
	"github.com/gonydus/nydus/rafs/export"

	"golang.org/x/sys/unix"
)

// The benchmarks run one workload on kernel overlayfs, on fuse-overlayfs
// (when installed) and on ours, each over the same lower tree with a fresh
// upper dir, and report ours' time as a ratio to each (x-kernel,
// x-fuse-overlayfs: 2.0 means twice as long). ns/op is ours.

// benchTarget mounts one overlay implementation and returns the mount
// point and how to unmount it.
type benchTarget struct {
	name  string
	mount func(b *testing.B, l layers) (string, func())
}

// benchTargets are the implementations to compare; OVERLAY_BENCH=ours
// (for profiling) keeps only ours, OVERLAY_BENCH=no-uring leaves out ours
// over io_uring (which turns the fuse module's enable_uring on for the
// run).
func benchTargets(b *testing.B) []benchTarget {
	ours := benchTarget{"ours", func(b *testing.B, l layers) (string, func()) {
		lower, err := overlay.NewDirLower(l.lower)
		if err != nil {
			b.Fatal(err)
		}
		return serve(b, lower, l)
	}}
	if os.Getenv("OVERLAY_BENCH") == "ours" {
		return []benchTarget{ours}
	}
	// Ours again, served over FUSE io_uring queues as nydusd serves it when
	// the kernel offers io_uring.
	oursURing := benchTarget{"ours-uring", func(b *testing.B, l layers) (string, func()) {
		lower, err := overlay.NewDirLower(l.lower)
		if err != nil {
			b.Fatal(err)
		}
		return serveOver(b, true, lower, l)
	}}
	ts := []benchTarget{
		{"kernel", func(b *testing.B, l layers) (string, func()) { return kernelMount(b, l, "") }},
	}
	if _, err := exec.LookPath("fuse-overlayfs"); err != nil {
		b.Logf("fuse-overlayfs baseline skipped: binary not found (%v); apt-get install fuse-overlayfs", err)
	} else {
		ts = append(ts, benchTarget{"fuse-overlayfs", mountFuseOverlayfs})
	}
	ts = append(ts, ours)
	if os.Getenv("OVERLAY_BENCH") == "no-uring" {
		b.Logf("ours over io_uring skipped: OVERLAY_BENCH=no-uring")
	} else if ok, why := uringAvailable(b); ok {
		ts = append(ts, oursURing)
	} else {
		b.Logf("ours over io_uring skipped: %s", why)
	}
	return ts
}

func mountFuseOverlayfs(b *testing.B, l layers) (string, func()) {
	mnt := filepath.Join(b.TempDir(), "fmnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		b.Fatal(err)
	}
	run(b, "fuse-overlayfs", "-o", fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", l.lower, l.upper, l.work), mnt)
	return mnt, func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			b.Errorf("unmount fuse-overlayfs: %v", err)
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	}
}

// compare runs work (given the mount point) on every target, each in a sub-
// benchmark with a fresh upper dir per iteration, and reports ours' time as
// a ratio to each baseline measured just before.
func compare(b *testing.B, base, lower string, work func(b *testing.B, mnt string)) {
	compareTargets(b, base, lower, benchTargets(b), work)
}

func compareTargets(b *testing.B, base, lower string, targets []benchTarget, work func(b *testing.B, mnt string)) {
	perOp := map[string]time.Duration{}
	cpuPerOp := map[string]time.Duration{}
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			var total, cpu time.Duration
			for range b.N {
				b.StopTimer()
				l := newLayersIn(b, base, lower)
				mnt, unmount := tg.mount(b, l)
				runtime.GC()
				b.StartTimer()
				cpu0 := cpuTime()
				start := time.Now()
				work(b, mnt)
				total += time.Since(start)
				cpu += cpuTime() - cpu0
				b.StopTimer()
				unmount()
				os.RemoveAll(l.upper)
				os.RemoveAll(l.work)
				b.StartTimer()
			}
			perOp[tg.name] = total / time.Duration(b.N)
			cpuPerOp[tg.name] = cpu / time.Duration(b.N)
			if !strings.HasPrefix(tg.name, "ours") {
				return
			}
			// x-<baseline> for ours over /dev/fuse, x-<baseline>-uring over io_uring.
			suffix := strings.TrimPrefix(tg.name, "ours")
			for name, d := range perOp {
				if strings.HasPrefix(name, "ours") {
					continue
				}
				r := float64(perOp[tg.name]) / float64(d)
				b.ReportMetric(r, "x-"+name+suffix)
				b.Logf("%s %v, %s %v: %.2fx", tg.name, perOp[tg.name], name, d, r)
				if strings.HasPrefix(name, "kernel") && cpuPerOp[name] > 0 {
					// Kernel overlayfs works in the reader's system time,
					// ours in this process and its children too: their
					// CPU times compare the work, whatever share of a
					// loaded machine each run got.
					c := float64(cpuPerOp[tg.name]) / float64(cpuPerOp[name])
					b.ReportMetric(c, "cpu-x-"+name+suffix)
					b.Logf("%s cpu %v, %s cpu %v: %.2fx", tg.name, cpuPerOp[tg.name], name, cpuPerOp[name], c)
				}
			}
		})
	}
}

// cpuTime is the user and system time of this process (where ours
// serves, and where in-process work runs) and of its waited-for children
// (tar) so far.
func cpuTime() time.Duration {
	var self, kids unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &self)
	unix.Getrusage(unix.RUSAGE_CHILDREN, &kids)
	d := func(t unix.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return d(self.Utime) + d(self.Stime) + d(kids.Utime) + d(kids.Stime)
}

// benchDir mounts a tmpfs for one benchmark's lower, upper and work dirs,
// so the figures are the overlays' and not the disk file system's (ext4 on
// the 2-core test VM spends 200-500 us of system time per file created,
// varying with its state, which drowns the differences).
func benchDir(b *testing.B) string {
	requireMount(b)
	d := b.TempDir()
	if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=4g"); err != nil {
		b.Fatalf("mount tmpfs: %v", err)
	}
	b.Cleanup(func() { unix.Unmount(d, unix.MNT_DETACH) })
	return d
}

// benchLower is a lower tree under base: 2,000 small files in 100
// directories and one 64 MiB file.
func benchLower(b *testing.B, base string) string {
	d := filepath.Join(base, "lower")
	data := make([]byte, 4096)
	for i := range 100 {
		dir := filepath.Join(d, "usr", fmt.Sprintf("d%03d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for k := range 20 {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", k)), data[:(i*k)%4096], 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	big := make([]byte, 64<<20)
	for i := range big {
		big[i] = byte(i>>12 + i)
	}
	if err := os.WriteFile(filepath.Join(d, "big"), big, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(d, "work"), 0o755); err != nil {
		b.Fatal(err)
	}
	return d
}

// BenchmarkUntar extracts the Go source tree (a tar of GOROOT/src, about
// 13k files) into a directory of the lower tree.
func BenchmarkUntar(b *testing.B) { benchUntar(b, "tar") }

// BenchmarkUntarBusybox is BenchmarkUntar with busybox's tar, as a
// container built on busybox untars: it works by path (mkdir of every
// parent, unlink before create, chown/chmod/utimes by name), which costs
// about seven LOOKUPs per file where GNU tar's *at calls cost one.
func BenchmarkUntarBusybox(b *testing.B) {
	if _, err := exec.LookPath("busybox"); err != nil {
		b.Skipf("busybox is not installed: %v", err)
	}
	benchUntar(b, "busybox", "tar")
}

// benchUntar extracts the Go source tree with the tar command tarCmd.
func benchUntar(b *testing.B, tarCmd ...string) {
	base := benchDir(b)
	tarball := filepath.Join(base, "src.tar")
	run(b, "tar", "-C", runtime.GOROOT(), "-cf", tarball, "src") //nolint:staticcheck // the tree of the toolchain running this test, which is on this machine
	st, err := os.Stat(tarball)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	compare(b, base, benchLower(b, base), func(b *testing.B, mnt string) {
		args := append(tarCmd[1:len(tarCmd):len(tarCmd)], "-C", filepath.Join(mnt, "usr"), "-xf", tarball)
		run(b, tarCmd[0], args...)
	})
}

// BenchmarkCreateStatDelete creates (with 100 bytes), stats and deletes
// 5,000 files in a merged directory.
func BenchmarkCreateStatDelete(b *testing.B) {
	base := benchDir(b)
	compare(b, base, benchLower(b, base), func(b *testing.B, mnt string) {
		data := make([]byte, 100)
		dir := filepath.Join(mnt, "usr", "d000")
		var st unix.Stat_t
		for i := range 5000 {
			p := filepath.Join(dir, fmt.Sprintf("new%05d", i))
			fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := unix.Write(fd, data); err != nil {
				b.Fatal(err)
			}
			unix.Close(fd)
			if err := unix.Stat(p, &st); err != nil {
				b.Fatal(err)
			}
			if err := unix.Unlink(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSeqWrite writes a new 512 MiB file in 1 MiB writes and fsyncs it.
func BenchmarkSeqWrite(b *testing.B) {
	const size = 512 << 20
	b.SetBytes(size)
	base := benchDir(b)
	compare(b, base, benchLower(b, base), func(b *testing.B, mnt string) {
		f, err := os.Create(filepath.Join(mnt, "work", "seq"))
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		for off := 0; off < size; off += len(buf) {
			buf[0] = byte(off >> 20)
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	})
}

// BenchmarkRandWrite makes 16,384 random 4 KiB writes into the 64 MiB
// lower file (so the first one copies it up) and fsyncs it.
func BenchmarkRandWrite(b *testing.B) {
	b.SetBytes(16384 * 4096)
	base := benchDir(b)
	compare(b, base, benchLower(b, base), func(b *testing.B, mnt string) {
		f, err := os.OpenFile(filepath.Join(mnt, "big"), os.O_RDWR, 0)
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		buf := make([]byte, 4096)
		for range 16384 {
			off := rng.Int64N(64<<20/4096) * 4096
			buf[0]++
			if _, err := f.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	})
}

// BenchmarkReadRAFS reads every file of a 2,000-file, 48 MiB tree through
// ours over a RAFS image of it (blob in memory) and through kernel
// overlayfs over the kernel EROFS mount of the same image (exported as a
// block image), each freshly mounted: the read path of a container rootfs.
func BenchmarkReadRAFS(b *testing.B) {
	base := benchDir(b)
	tree := filepath.Join(base, "tree")
	data := make([]byte, 24<<10)
	for i := range data {
		data[i] = byte(i*31 + i>>9)
	}
	for i := range 2000 {
		p := filepath.Join(tree, fmt.Sprintf("d%02d", i%40), fmt.Sprintf("f%04d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		data[0] = byte(i)
		if err := os.WriteFile(p, data[:(i*4099)%len(data)+1], 0o644); err != nil {
			b.Fatal(err)
		}
	}
	im := buildRAFS(b, tree)
	// On the disk file system: EROFS cannot mount a tmpfs file (ENOTBLK).
	img := filepath.Join(b.TempDir(), "image.erofs")
	f, err := os.Create(img)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := export.Block(context.Background(), im.img, im.src, f); err != nil {
		b.Fatal(err)
	}
	f.Close()
	readAll := func(b *testing.B, mnt string) {
		var total int64
		err := filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			data, err := os.ReadFile(p)
			total += int64(len(data))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	targets := []benchTarget{
		{"kernel-erofs", func(b *testing.B, l layers) (string, func()) {
			erofs := filepath.Join(l.work, "..", "erofs")
			if err := os.Mkdir(erofs, 0o755); err != nil {
				b.Fatal(err)
			}
			if err := unix.Mount(img, erofs, "erofs", unix.MS_RDONLY, ""); err != nil {
				b.Skipf("this kernel cannot mount an EROFS image file directly: %v", err)
			}
			l.lower = erofs
			mnt, unmount := kernelMount(b, l, "")
			return mnt, func() { unmount(); unix.Unmount(erofs, 0) }
		}},
		{"ours", func(b *testing.B, l layers) (string, func()) { return serve(b, im.lower, l) }},
	}
	if os.Getenv("OVERLAY_BENCH") == "no-uring" {
		b.Logf("ours over io_uring skipped: OVERLAY_BENCH=no-uring")
	} else if ok, why := uringAvailable(b); ok {
		targets = append(targets, benchTarget{"ours-uring", func(b *testing.B, l layers) (string, func()) { return serveOver(b, true, im.lower, l) }})
	} else {
		b.Logf("ours over io_uring skipped: %s", why)
	}
	compareTargets(b, base, tree, targets, readAll)
}
