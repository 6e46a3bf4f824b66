package main

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
)

// TestNotifyReady: under systemd (Type=notify), nydusd says READY=1 once
// its FUSE mount serves, so units ordered after it find the mount there.
func TestNotifyReady(t *testing.T) {
	testutil.RequireFUSE(t)
	image, nydusd := testBinaries(t)
	src, blobs := t.TempDir(), t.TempDir()
	want := []byte("ready\n")
	if err := os.WriteFile(filepath.Join(src, "f"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	boot := filepath.Join(t.TempDir(), "image.boot")
	if out, err := exec.Command(image, "create", "-l", "warn", "-B", boot, "-D", blobs, src).CombinedOutput(); err != nil {
		t.Fatalf("create: %v: %s", err, out)
	}
	notifyPath := filepath.Join(t.TempDir(), "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	mnt := t.TempDir()
	cmd := exec.Command(nydusd, "--mountpoint", mnt, "--bootstrap", boot, "--localfs-dir", blobs, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(unix.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	}()
	notify.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 256)
	n, err := notify.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
		t.Fatalf("readiness: %q, %v\n%s", buf[:n], err, stderr.String())
	}
	// Ready means served: the file is there without waiting.
	if got, err := os.ReadFile(filepath.Join(mnt, "f")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("right after READY=1: %q, %v", got, err)
	}
}
