package overlay_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/fuseuring"
	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/overlay"
)

// requireMount skips unless the test can mount FUSE and overlayfs.
func requireMount(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t, "mounts FUSE and overlayfs")
	testutil.RequireFUSE(t)
}

// layers is one lower/upper/work triple under a fresh temp dir.
type layers struct{ lower, upper, work string }

func newLayers(t testing.TB, lower string) layers { return newLayersIn(t, t.TempDir(), lower) }

func newLayersIn(t testing.TB, d, lower string) layers {
	d, err := os.MkdirTemp(d, "layers")
	if err != nil {
		t.Fatal(err)
	}
	l := layers{lower: lower, upper: filepath.Join(d, "upper"), work: filepath.Join(d, "work")}
	for _, p := range []string{l.upper, l.work} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// mountOurs serves our overlay of l at a new directory until cleanup.
func mountOurs(t testing.TB, l layers, opts ...overlay.Option) string {
	t.Helper()
	lower, err := overlay.NewDirLower(l.lower)
	if err != nil {
		t.Fatal(err)
	}
	return mountLower(t, lower, l, opts...)
}

func mountLower(t testing.TB, lower overlay.Lower, l layers, opts ...overlay.Option) string {
	t.Helper()
	mnt, unmount := serve(t, lower, l, opts...)
	t.Cleanup(unmount)
	return mnt
}

// serve mounts our overlay of lower and l, served over /dev/fuse, and
// returns the mount point and the function that unmounts it.
func serve(t testing.TB, lower overlay.Lower, l layers, opts ...overlay.Option) (string, func()) {
	return serveOver(t, false, lower, l, opts...)
}

// serveOver is serve, over FUSE io_uring queues when uring is set (see
// needURing).
func serveOver(t testing.TB, uring bool, lower overlay.Lower, l layers, opts ...overlay.Option) (string, func()) {
	t.Helper()
	f, err := overlay.New(lower, l.upper, l.work, opts...)
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	o := overlay.MountOptions("test")
	if uring {
		o.MountOptions.ExtraCapabilities |= fuse.CAP_OVER_IO_URING
	}
	raw := gofs.NewNodeFS(f.Root(), o)
	srv, err := fuse.NewServer(raw, mnt, &o.MountOptions)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	var tr *fuseuring.Transport
	if uring {
		// Before WaitMount: the kernel holds requests until the queues are in.
		if tr, err = fuseuring.Start(srv, raw); err != nil {
			srv.Unmount()
			t.Fatalf("FUSE over io_uring: %v", err)
		}
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		t.Fatalf("mount: %v", err)
	}
	return mnt, func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
		if tr != nil {
			tr.Close()
			if tr.Stats().Requests == 0 {
				t.Errorf("served over io_uring, yet the rings answered no request")
			}
		}
		f.Close()
	}
}

// uringAvailable turns the fuse module's enable_uring on (back to its old
// value at cleanup) and reports whether FUSE over io_uring can be used,
// with the reason when not.
func uringAvailable(t testing.TB) (bool, string) {
	restore, err := fuseuring.Enable()
	if err != nil {
		return false, err.Error()
	}
	t.Cleanup(func() { restore() })
	if err := fuseuring.Available(); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// needURing skips t, saying why, when FUSE over io_uring can't be used.
func needURing(t *testing.T) {
	t.Helper()
	requireMount(t)
	if ok, why := uringAvailable(t); !ok {
		testutil.Missing(t, "FUSE over io_uring: %s", why)
	}
}

// mountKernel mounts kernel overlayfs of l (no redirect_dir, index,
// metacopy or xino, so it behaves as ours; redirects are neither written
// nor followed, as by ours) at a new directory.
func mountKernel(t testing.TB, l layers, extra string) string {
	t.Helper()
	mnt, unmount := kernelMount(t, l, extra)
	t.Cleanup(unmount)
	return mnt
}

func kernelMount(t testing.TB, l layers, extra string) (string, func()) {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "kmnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=nofollow,index=off,metacopy=off,xino=off%s",
		l.lower, l.upper, l.work, extra)
	if err := unix.Mount("overlay", mnt, "overlay", 0, data); errors.Is(err, unix.ENODEV) {
		testutil.Missing(t, "kernel overlayfs to compare with: %v", err)
	} else if err != nil {
		t.Fatalf("mount kernel overlayfs (%s): %v", data, err)
	}
	return mnt, func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount kernel overlay: %v", err)
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	}
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}
