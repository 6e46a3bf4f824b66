// Package spawn starts a nydusd process that outlives its starter (its
// own session, output to a log file) and waits until its FUSE mount is
// in place, as the Docker graphdriver and the nydus-overlayfs mount
// helper do.
package spawn

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Nydusd is one nydusd to start.
type Nydusd struct {
	Binary     string   // the nydusd executable
	Args       []string // its arguments; they must mount at Mountpoint
	Mountpoint string
	LogFile    string        // stdout and stderr are appended here
	Timeout    time.Duration // how long the mount may take (default 30 s)
}

// Start starts n and returns its pid once a FUSE filesystem is mounted at
// n.Mountpoint. If nydusd exits first, or the timeout passes (nydusd is
// then killed and anything at the mountpoint detached), the error carries
// the last lines of its log.
func Start(n Nydusd) (int, error) {
	if n.Binary == "" || n.Mountpoint == "" || n.LogFile == "" {
		return 0, errors.New("spawn: binary, mountpoint and log file are required")
	}
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	logf, err := os.OpenFile(n.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("spawn: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(n.Binary, n.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the starter may exit or restart, the mount stays.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("spawn: start %s: %w", n.Binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(timeout)
	for !FUSEMountedAt(n.Mountpoint) {
		select {
		case err := <-exited:
			return 0, fmt.Errorf("nydusd exited before mounting (%w): %s", err, LogTail(n.LogFile))
		case <-deadline:
			cmd.Process.Kill()
			unix.Unmount(n.Mountpoint, unix.MNT_DETACH)
			return 0, fmt.Errorf("nydusd did not mount %s within %v: %s", n.Mountpoint, timeout, LogTail(n.LogFile))
		case <-time.After(20 * time.Millisecond):
		}
	}
	return cmd.Process.Pid, nil
}

// FUSEMountedAt reports whether the topmost mount at dir is a FUSE
// filesystem.
func FUSEMountedAt(dir string) bool {
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	return err == nil && len(ms) > 0 && strings.HasPrefix(ms[len(ms)-1].FSType, "fuse")
}

// LogTail returns the last lines of a log file joined by " | ", for error
// messages.
func LogTail(path string) string {
	b, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return string(bytes.Join(lines, []byte(" | ")))
}
