package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Hangup names what CheckReopenOnHangup looks for in a daemon's log.
type Hangup struct {
	Log      string // the log file's path
	Ready    string // a record the daemon writes once serving
	Reopened string // the record that starts a reopened file
	Stopped  string // a record the daemon writes when SIGTERM stops it
}

// CheckReopenOnHangup rotates a running daemon's log file the way
// logrotate does without copytruncate: it waits for cmd (started, not
// waited for) to log h.Ready, renames the file away, sends SIGHUP and
// requires the daemon to go on running and write its next records —
// h.Reopened, then h.Stopped once SIGTERM stops it — to a new file at
// h.Log, none of them to the renamed one. It stops and waits for cmd.
func CheckReopenOnHangup(tb testing.TB, cmd *exec.Cmd, h Hangup) {
	tb.Helper()
	logPath, reopenedMsg, stopMsg := h.Log, h.Reopened, h.Stopped
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	}()
	waitFor := func(what string, d time.Duration, ok func() bool) {
		tb.Helper()
		deadline := time.Now().Add(d)
		for !ok() {
			select {
			case <-exited:
				tb.Fatalf("%s: the daemon exited (%v); log: %s", what, waitErr, readAll(logPath))
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				tb.Fatalf("%s: not within %v; log: %s", what, d, readAll(logPath))
			}
		}
	}
	waitFor(fmt.Sprintf("%q in %s", h.Ready, logPath), 2*time.Minute, func() bool {
		return strings.Contains(readAll(logPath), h.Ready)
	})
	rotated := logPath + ".rotated"
	if err := os.Rename(logPath, rotated); err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		tb.Fatal(err)
	}
	waitFor("a new "+logPath+" after SIGHUP", 10*time.Second, func() bool {
		return strings.Contains(readAll(logPath), reopenedMsg)
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		tb.Fatalf("not stopped within 30 s of SIGTERM; log: %s", readAll(logPath))
	}
	now, old := readAll(logPath), readAll(rotated)
	if !strings.Contains(now, stopMsg) {
		tb.Errorf("the new log file lacks the stop record %q:\n%s", stopMsg, now)
	}
	if strings.Contains(old, reopenedMsg) || strings.Contains(old, stopMsg) {
		tb.Errorf("records after SIGHUP went to the renamed file:\n%s", old)
	}
	if strings.TrimSpace(old) == "" {
		tb.Errorf("the renamed file is empty: its records were lost")
	}
}

func readAll(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
