// Package ptytest runs commands with their stderr on a pseudo-terminal,
// for tests of what programs draw on terminals (progress bars).
package ptytest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/creack/pty"
)

// Result is what a command wrote and how it ended.
type Result struct {
	Stdout, Stderr string
	Err            error // from Wait
}

// Run starts cmd with stderr on a new pseudo-terminal of cols×rows (0×0 is
// a terminal nobody sized) and stdout on a pipe, and waits for it at most
// timeout, killing it then. cmd.Stdout and cmd.Stderr must be unset.
func Run(cmd *exec.Cmd, cols, rows uint16, timeout time.Duration) (*Result, error) {
	if cmd.Stdout != nil || cmd.Stderr != nil {
		return nil, errors.New("ptytest: cmd.Stdout and cmd.Stderr must be unset")
	}
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("ptytest: open pty: %w", err)
	}
	defer ptmx.Close()
	if cols > 0 || rows > 0 {
		if err := pty.Setsize(ptmx, &pty.Winsize{Cols: cols, Rows: rows}); err != nil {
			tty.Close()
			return nil, fmt.Errorf("ptytest: size pty: %w", err)
		}
	}
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, tty
	if err := cmd.Start(); err != nil {
		tty.Close()
		return nil, err
	}
	tty.Close() // the child holds it now
	var stderr bytes.Buffer
	copied := make(chan struct{})
	go func() {
		io.Copy(&stderr, ptmx) // ends with EIO once the child's side closes
		close(copied)
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	res := &Result{}
	select {
	case res.Err = <-waited:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-waited
		return nil, fmt.Errorf("ptytest: %s did not end within %v", cmd.Path, timeout)
	}
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
		ptmx.SetReadDeadline(time.Now())
		return nil, errors.New("ptytest: the terminal's output did not end")
	}
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	return res, nil
}
