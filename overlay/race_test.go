package overlay_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSymlinkSwapRace swaps a directory of the merged view for a symlink
// to a canary directory outside the overlay's layers (and back), as fast
// as it can, while other goroutines open, chmod, chown, truncate, set
// xattrs, utimens and create through a descriptor of the real directory:
// the kernel never follows the symlink for them, so neither may the
// daemon, which runs as root. The canary must be untouched at the end,
// and nothing may have gone to the lower tree. The swapper works through
// the mount, as a container does, and, faster (so the windows between the
// daemon's checks and uses are hit more often), in the upper dir itself.
func TestSymlinkSwapRace(t *testing.T) {
	requireMount(t)
	t.Run("mount", func(t *testing.T) { swapRace(t, false) })
	t.Run("upper", func(t *testing.T) { swapRace(t, true) })
}

func swapRace(t *testing.T, inUpper bool) {
	root := t.TempDir()
	canary := filepath.Join(root, "canary")
	lower := filepath.Join(root, "lower")
	for _, d := range []string{canary, lower} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(canary, "f"), []byte("canary data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "l"), []byte("lower data"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, lowerBefore := describeDir(t, canary), describeDir(t, lower)
	l := newLayers(t, lower)
	m := mountOurs(t, l)
	a := filepath.Join(m, "a")
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, "f"), []byte("overlay data"), 0o644); err != nil {
		t.Fatal(err)
	}

	const runFor = 3 * time.Second
	var stop atomic.Bool
	var swaps, ops atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	const workers = 4
	var dfds [workers]int
	for g := range dfds {
		fd, err := unix.Open(a, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd) //nolint:revive // held until the test returns, after the goroutines stop
		dfds[g] = fd
	}
	wg.Add(1)
	go func() { // the container's swapper
		defer wg.Done()
		a, aside := a, filepath.Join(m, "a.real")
		if inUpper {
			a, aside = filepath.Join(l.upper, "a"), filepath.Join(l.upper, "a.real")
		}
		for !stop.Load() {
			if err := os.Rename(a, aside); err != nil {
				errs <- fmt.Errorf("swap: %w", err)
				return
			}
			if err := os.Symlink(canary, a); err != nil {
				errs <- fmt.Errorf("swap: %w", err)
				return
			}
			if err := os.Remove(a); err != nil {
				errs <- fmt.Errorf("swap: %w", err)
				return
			}
			if err := os.Rename(aside, a); err != nil {
				errs <- fmt.Errorf("swap: %w", err)
				return
			}
			swaps.Add(1)
		}
	}()
	for g, dfd := range dfds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			proc := "/proc/self/fd/" + strconv.Itoa(dfd) + "/f"
			for i := 0; !stop.Load(); i++ {
				switch (i + g) % 7 {
				case 0:
					unix.Fchmodat(dfd, "f", uint32(0o640+i%2*4), 0)
				case 1:
					unix.Fchownat(dfd, "f", 1000+i%3, 1000+i%3, 0)
				case 2:
					if fd, err := unix.Openat(dfd, "f", unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0); err == nil {
						unix.Write(fd, []byte("overlay data"))
						unix.Close(fd)
					}
				case 3:
					unix.Setxattr(proc, "user.race", []byte("x"), 0)
				case 4:
					unix.UtimesNanoAt(dfd, "f", []unix.Timespec{{Sec: 12345}, {Sec: 12345}}, 0)
				case 5:
					unix.Truncate(proc, 1)
				case 6:
					name := fmt.Sprintf("new%d", g)
					if fd, err := unix.Openat(dfd, name, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o666); err == nil {
						unix.Close(fd)
					}
					unix.Fchmodat(dfd, name, 0o777, 0)
					unix.Unlinkat(dfd, name, 0)
				}
				ops.Add(1)
			}
		}()
	}
	time.Sleep(runFor)
	stop.Store(true)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the goroutines did not stop within 30s")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d swaps, %d operations in %v", swaps.Load(), ops.Load(), runFor)
	if swaps.Load() < 10 {
		t.Errorf("only %d swaps: the race was not exercised", swaps.Load())
	}
	if after := describeDir(t, canary); after != before {
		t.Errorf("the canary outside the overlay changed:\nbefore: %s\nafter:  %s", before, after)
	}
	if after := describeDir(t, lower); after != lowerBefore {
		t.Errorf("the lower tree changed:\nbefore: %s\nafter:  %s", lowerBefore, after)
	}
}

// TestSymlinkPlantedInUpper is the race of TestSymlinkSwapRace with its
// window held open: while a process holds a descriptor of directory a of
// the merged view, a is renamed and a symlink to a canary directory put
// in its place in the upper directory itself; operations through the
// descriptor must then reach the real directory (or fail), never the
// canary.
func TestSymlinkPlantedInUpper(t *testing.T) {
	requireMount(t)
	root := t.TempDir()
	canary := filepath.Join(root, "canary")
	lower := filepath.Join(root, "lower")
	for _, d := range []string{canary, lower} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(canary, "f"), []byte("canary data"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := describeDir(t, canary)
	l := newLayers(t, lower)
	m := mountOurs(t, l)
	a := filepath.Join(m, "a")
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, "f"), []byte("overlay data"), 0o644); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(a, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	if err := os.Rename(filepath.Join(l.upper, "a"), filepath.Join(l.upper, "a.real")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(canary, filepath.Join(l.upper, "a")); err != nil {
		t.Fatal(err)
	}
	proc := "/proc/self/fd/" + strconv.Itoa(dfd)
	results := map[string]error{
		"chmod":    unix.Fchmodat(dfd, "f", 0o777, 0),
		"chown":    unix.Fchownat(dfd, "f", 1000, 1000, 0),
		"utimes":   unix.UtimesNanoAt(dfd, "f", []unix.Timespec{{Sec: 12345}, {Sec: 12345}}, 0),
		"setxattr": unix.Setxattr(proc+"/f", "user.planted", []byte("x"), 0),
		"truncate": unix.Truncate(proc+"/f", 1),
		"open":     writeFileAt(dfd, "f", unix.O_WRONLY|unix.O_TRUNC, 0, "written"),
		"create":   writeFileAt(dfd, "new", unix.O_CREAT|unix.O_WRONLY, 0o644, "new"),
		"mkdir":    unix.Mkdirat(dfd, "newdir", 0o755),
		"mknod":    unix.Mknodat(dfd, "fifo", unix.S_IFIFO|0o644, 0),
		"symlink":  unix.Symlinkat("/etc/passwd", dfd, "sym"),
		"rename":   unix.Renameat(dfd, "f", dfd, "g"),
		"unlink":   unix.Unlinkat(dfd, "g", 0),
	}
	for op, err := range results {
		t.Logf("%s: %s", op, errnoName(err))
	}
	if after := describeDir(t, canary); after != before {
		t.Errorf("the canary outside the overlay changed:\nbefore: %s\nafter:  %s", before, after)
	}
}

// describeDir describes every entry of dir: name, mode, owner, size,
// mtime, content and xattrs.
func describeDir(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		t.Fatal(err)
	}
	out = append(out, fmt.Sprintf(".: %o %d:%d", st.Mode, st.Uid, st.Gid))
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		var data []byte
		if st.Mode&unix.S_IFMT == unix.S_IFREG { // never open a FIFO planted there
			data, _ = os.ReadFile(p)
		}
		xs := make([]byte, 1024)
		k, _ := unix.Llistxattr(p, xs)
		out = append(out, fmt.Sprintf("%s: %o %d:%d size=%d mtime=%d %q xattrs=%q",
			e.Name(), st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Nano(), data, xs[:max(k, 0)]))
	}
	sort.Strings(out)
	return fmt.Sprint(out)
}
