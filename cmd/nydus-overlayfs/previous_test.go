package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestWaitPrevious: a new userspace mount of a snapshot waits for the
// nydusd of the earlier mount (recognised by its api.sock in the command
// line) to exit, bounded by the timeout; other pids are not waited for.
func TestWaitPrevious(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "nydusd.pid")
	if err := waitPrevious(pidFile, time.Second); err != nil {
		t.Fatalf("no pid file: %v", err)
	}
	// A stand-in for the earlier nydusd: its argv holds <dir>/api.sock.
	start := func(d string) *exec.Cmd {
		cmd := exec.Command("sh", "-c", "sleep "+d, filepath.Join(dir, "api.sock"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go cmd.Wait()
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	start("0.4")
	t0 := time.Now()
	if err := waitPrevious(pidFile, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 300*time.Millisecond {
		t.Fatalf("returned after %v, before the earlier nydusd exited", d)
	}
	cmd := start("5")
	defer cmd.Process.Kill()
	if err := waitPrevious(pidFile, 100*time.Millisecond); err == nil {
		t.Fatal("no error while the earlier nydusd still runs past the timeout")
	}
	// A pid that is some other process is not waited for.
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := waitPrevious(pidFile, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
