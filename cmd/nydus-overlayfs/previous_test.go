package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
		// The helper writes the pid file once nydusd serves, long after
		// its exec; right after fork and exec the kernel shows an empty
		// cmdline for a moment (CI loop: waitPrevious read it then and
		// returned at once). Write it once the argv shows.
		own := filepath.Join(dir, "api.sock")
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid)); strings.Contains(string(b), own) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the stand-in's cmdline never showed %s", own)
			}
		}
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
