package spawn

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A process that exits without mounting: the error says so and carries
// its output.
func TestStartExitsBeforeMounting(t *testing.T) {
	dir := t.TempDir()
	_, err := Start(Nydusd{Binary: "/bin/sh", Args: []string{"-c", "echo no config here; exit 3"},
		Mountpoint: dir, LogFile: filepath.Join(dir, "log"), Timeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "exited before mounting") || !strings.Contains(err.Error(), "no config here") {
		t.Fatalf("err = %v", err)
	}
}

// A process that never mounts is killed at the timeout.
func TestStartTimesOut(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	_, err := Start(Nydusd{Binary: "/bin/sleep", Args: []string{"30"}, Mountpoint: dir, LogFile: filepath.Join(dir, "log"), Timeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "did not mount") || time.Since(start) > 10*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

func TestStartNeedsFields(t *testing.T) {
	if _, err := Start(Nydusd{Binary: "/bin/true"}); err == nil {
		t.Fatal("no mountpoint or log file accepted")
	}
	if FUSEMountedAt(t.TempDir()) {
		t.Fatal("a plain directory reads as a FUSE mount")
	}
	if LogTail(filepath.Join(os.TempDir(), "no-such-log-file")) != "" {
		t.Fatal("tail of a missing file")
	}
}
