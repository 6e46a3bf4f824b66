package fuseuring

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// needFUSE skips without /dev/fuse or root (mounting needs both).
func needFUSE(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("mounting FUSE needs root")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		tb.Skip("no /dev/fuse")
	}
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
