package fuseuring

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gonydus/nydus/internal/testutil"
)

// needFUSE skips without root or /dev/fuse (mounting needs both).
func needFUSE(tb testing.TB) {
	tb.Helper()
	testutil.RequireRoot(tb, "mounts FUSE")
	testutil.RequireFUSE(tb)
}

func TestLoopbackThroughDevLoop(t *testing.T) {
	needFUSE(t)
	t.Run("no-passthrough", func(t *testing.T) { testLoopback(t, false, true) })
	t.Run("passthrough", func(t *testing.T) { testLoopback(t, true, true) })
	t.Run("no-passthrough-async", func(t *testing.T) { testLoopback(t, false, true, WithAsync(true)) })
}

func TestReadOnlyTreeThroughDevLoop(t *testing.T) {
	needFUSE(t)
	m := mountHow(t, &testTree{}, false, true, nil)
	st, err := os.Lstat(filepath.Join(m.dir, "d", "f"))
	if err != nil || st.Size() != 5 || st.Mode().Perm() != 0o644 {
		t.Fatalf("stat: %v %v", st, err)
	}
	if b, err := os.ReadFile(filepath.Join(m.dir, "d", "f")); err != nil || string(b) != "hello" {
		t.Fatalf("read: %q %v", b, err)
	}
	if _, ops := m.ops(); ops["LOOKUP"] == 0 || ops["READ"] == 0 {
		t.Fatalf("ops served by the loop: %v", ops)
	}
}

// TestAsyncOpsDoNotStallDevLoop: READ handed to goroutines lets a lookup
// through while a read blocks in the file system.
func TestAsyncOpsDoNotStallDevLoop(t *testing.T) {
	needFUSE(t)
	testAsyncOpsHow(t, true, WithAsyncOps("READ"))
}

// TestDevLoopEndsAtUnmount: the loop ends with the connection and go-fuse's
// Serve, Wait and Unmount behave as without it.
func TestDevLoopEndsAtUnmount(t *testing.T) {
	needFUSE(t)
	m := mountHow(t, &testTree{}, false, true, nil)
	if _, err := os.ReadDir(m.dir); err != nil {
		t.Fatal(err)
	}
	loop := m.dev
	m.unmount(t)
	select {
	case <-loop.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("loop still running after unmount")
	}
}

// TestServeDeviceRefusesURingConnection: once INIT negotiated FUSE over
// io_uring the kernel holds the connection's requests for its rings, so
// DevLoop, which reads /dev/fuse, must refuse it rather than leave every
// request waiting; the rings then serve it.
func TestServeDeviceRefusesURingConnection(t *testing.T) {
	needURing(t)
	dir := t.TempDir()
	opts := &fs.Options{}
	opts.MountOptions = fuse.MountOptions{FsName: "fuseuring-test", Name: "fuseuringtest", ExtraCapabilities: fuse.CAP_OVER_IO_URING}
	raw := fs.NewNodeFS(&testTree{}, opts)
	srv, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	m := &mounted{dir: dir, conn: connOf(dir), srv: srv}
	if m.dev, err = ServeDevice(srv, raw); err == nil {
		m.abort()
		t.Fatal("ServeDevice took a connection that negotiated FUSE over io_uring")
	}
	t.Logf("refused: %v", err)
	if m.tr, err = Start(srv, raw); err != nil {
		m.abort()
		go srv.Serve()
		srv.Unmount()
		t.Fatalf("Start: %v", err)
	}
	go srv.Serve()
	t.Cleanup(func() { m.unmount(t) })
	if err := srv.WaitMount(); err != nil {
		t.Fatalf("WaitMount: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "d", "f")); err != nil || string(b) != "hello" {
		t.Fatalf("read over the rings after the refusal: %q %v", b, err)
	}
}

// TestDevLoopForgetsPollHackNode: go-fuse answers a lookup of its
// ".go-fuse-epoll-hack" at mount with node id 2^64-1, which its file
// system bridge does not know; when the kernel drops that dentry (here:
// drop_caches) it sends a FORGET for it, which must not reach the bridge
// (it panicked there and killed the serving process: a soak round found
// it). The mount goes on serving.
func TestDevLoopForgetsPollHackNode(t *testing.T) {
	needFUSE(t)
	m := mountHow(t, &testTree{}, false, true, nil)
	if _, err := os.Stat(filepath.Join(m.dir, "d", "f")); err != nil {
		t.Fatal(err)
	}
	before := m.dev.Ops()["FORGET"] + m.dev.Ops()["BATCH_FORGET"]
	deadline := time.Now().Add(10 * time.Second)
	for m.dev.Ops()["FORGET"]+m.dev.Ops()["BATCH_FORGET"] == before {
		if time.Now().After(deadline) {
			t.Fatal("the kernel sent no FORGET within 10 s of drop_caches: the case is not made")
		}
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0o200); err != nil {
			t.Skipf("skipped: needs /proc/sys/vm/drop_caches to make the kernel forget: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-m.dev.Done():
		t.Fatal("the loop ended after a FORGET")
	default:
	}
	if b, err := os.ReadFile(filepath.Join(m.dir, "d", "f")); err != nil || string(b) != "hello" {
		t.Fatalf("read after the FORGETs: %q %v", b, err)
	}
}
