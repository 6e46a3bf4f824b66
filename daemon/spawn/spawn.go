// Package spawn starts a nydusd process that outlives its starter (its
// own session, output to a log file) and waits until its FUSE mount is
// in place, as the Docker graphdriver and the nydus-overlayfs mount
// helper do.
package spawn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	// Supervise, when set, runs nydusd under a keeper process that
	// replaces it by takeover when it dies and upgrades it on request
	// (see Keeper); Start then returns the keeper's pid, and SIGTERM to
	// it stops nydusd.
	Supervise *Supervision
}

// Supervision says how a keeper supervises nydusd.
type Supervision struct {
	// Command runs the keeper: an executable whose main hands its
	// arguments to KeeperMain, and the subcommand that makes it do so.
	Command []string
	// Dir holds the keeper's sockets, <Dir>/<ID>.sup (nydusd's
	// --supervisor) and <Dir>/<ID>.ctl (control: see Control and
	// UpgradeAll); the paths must fit a unix socket (107 bytes).
	Dir string
	ID  string // the daemon id (nydusd's --id)
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
	if n.Supervise != nil {
		return startKept(n, timeout)
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

// startKept starts n's keeper and waits until it reports nydusd running
// with its state handed over.
func startKept(n Nydusd, timeout time.Duration) (int, error) {
	sv := n.Supervise
	if len(sv.Command) == 0 || sv.Dir == "" || sv.ID == "" || strings.ContainsRune(sv.ID, '/') {
		return 0, fmt.Errorf("spawn: supervision needs a keeper command, a socket dir and an id without '/' (got %q, %q, %q)", sv.Command, sv.Dir, sv.ID)
	}
	k := &Keeper{ID: sv.ID, Socket: filepath.Join(sv.Dir, sv.ID+".sup"), Control: filepath.Join(sv.Dir, sv.ID+ControlSuffix),
		Binary: n.Binary, Args: n.Args, Timeout: timeout}
	argv := append(append([]string(nil), sv.Command[1:]...), k.keeperArgs()...)
	if _, err := ParseKeeper(k.keeperArgs()); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(sv.Dir, 0o700); err != nil {
		return 0, fmt.Errorf("spawn: %w", err)
	}
	logf, err := os.OpenFile(n.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("spawn: %w", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("spawn: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(sv.Command[0], argv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = setsid()
	err = cmd.Start()
	w.Close()
	if err != nil {
		return 0, fmt.Errorf("spawn: start keeper %s: %w", sv.Command[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	fail := func(err error) (int, error) {
		cmd.Process.Kill()
		unix.Unmount(n.Mountpoint, unix.MNT_DETACH)
		return 0, err
	}
	// The keeper bounds nydusd's start by timeout and the hand-over by
	// handOverTimeout; this bounds the keeper.
	select {
	case l := <-line:
		if pid, ok := strings.CutPrefix(l, "ready "); ok {
			if _, err := strconv.Atoi(pid); err == nil {
				return cmd.Process.Pid, nil
			}
		}
		if msg, ok := strings.CutPrefix(l, "error "); ok {
			return fail(fmt.Errorf("nydusd did not start: %s: %s", msg, LogTail(n.LogFile)))
		}
		err := <-exited
		return fail(fmt.Errorf("keeper exited before nydusd ran (%w): %s", err, LogTail(n.LogFile)))
	case <-time.After(timeout + handOverTimeout + 5*time.Second):
		return fail(fmt.Errorf("nydusd did not run at %s within %v: %s", n.Mountpoint, timeout, LogTail(n.LogFile)))
	}
}

// fuseDev returns the major:minor of the topmost FUSE mount at dir, or ""
// if there is none.
func fuseDev(dir string) string {
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil || len(ms) == 0 || !strings.HasPrefix(ms[len(ms)-1].FSType, "fuse") {
		return ""
	}
	m := ms[len(ms)-1]
	return fmt.Sprintf("%d:%d", m.Major, m.Minor)
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
