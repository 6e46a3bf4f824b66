package overlay_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"

	"github.com/gonydus/nydus/overlay"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// posixSkip lists the suite's tests that kernel overlayfs fails as well.
var posixSkip = map[string]string{
	"FcntlFlockLocksFile": "expects two descriptors of one process to conflict (go-fuse loopback's OFD locks); " +
		"POSIX record locks of one process never conflict, and kernel overlayfs fails it too: TestLocksAcrossProcesses checks locking",
}

// TestPOSIX runs go-fuse's POSIX suite on the writable mount, once on an
// empty lower tree and once inside a directory that comes from the lower
// tree (so every object it touches is merged or copied up); over /dev/fuse
// and over FUSE io_uring queues.
func TestPOSIX(t *testing.T) {
	requireMount(t)
	t.Run("devfuse", func(t *testing.T) { posixSuite(t, false) })
	t.Run("uring", func(t *testing.T) {
		needURing(t)
		posixSuite(t, true)
	})
}

func posixSuite(t *testing.T, uring bool) {
	var names []string
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, where := range []string{"root", "lowerdir"} {
		t.Run(where, func(t *testing.T) {
			for _, name := range names {
				t.Run(name, func(t *testing.T) {
					if why, ok := posixSkip[name]; ok {
						t.Skip(why)
					}
					lower := t.TempDir()
					dir := ""
					if where == "lowerdir" {
						dir = "lowerdir"
						if err := os.MkdirAll(filepath.Join(lower, dir), 0o755); err != nil {
							t.Fatal(err)
						}
					}
					l := newLayers(t, lower)
					lowerFS, err := overlay.NewDirLower(l.lower)
					if err != nil {
						t.Fatal(err)
					}
					m, unmount := serveOver(t, uring, lowerFS, l)
					t.Cleanup(unmount)
					posixtest.All[name](t, filepath.Join(m, dir))
				})
			}
		})
	}
}

// TestLocksAcrossProcesses takes a POSIX write lock on the mount and checks
// that another process is refused a read lock and sees the holder.
func TestLocksAcrossProcesses(t *testing.T) {
	requireMount(t)
	lower := t.TempDir()
	if err := os.WriteFile(filepath.Join(lower, "f"), []byte("lower"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := mountOurs(t, newLayers(t, lower))
	f, err := os.OpenFile(filepath.Join(m, "f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
		t.Fatalf("F_SETLK: %v", err)
	}
	out, err := helper("lock", filepath.Join(m, "f"))
	if err != nil {
		t.Fatalf("lock helper: %v", err)
	}
	if want := fmt.Sprintf("EAGAIN holder=%d", os.Getpid()); out != want {
		t.Fatalf("other process: %q, want %q", out, want)
	}
}
