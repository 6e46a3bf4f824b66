package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// dirs are the upper and work directories an FS holds: checked as the
// kernel checks them, locked against a second overlay using them, and
// <work_dir>/work emptied, as the kernel does at mount time.
type dirs struct {
	upper, scratch  string
	upperFd, workFd int // O_PATH handles for the *at calls
	locks           []int
}

func openDirs(upperDir, workDir string, handover bool) (_ *dirs, err error) {
	up, err := filepath.Abs(upperDir)
	if err != nil {
		return nil, fmt.Errorf("overlay: upper dir: %w", err)
	}
	wd, err := filepath.Abs(workDir)
	if err != nil {
		return nil, fmt.Errorf("overlay: work dir: %w", err)
	}
	if inside(up, wd) || inside(wd, up) {
		return nil, fmt.Errorf("overlay: upper dir %s and work dir %s must be separate trees: %w", up, wd, unix.EINVAL)
	}
	var ust, wst unix.Stat_t
	if err := unix.Stat(up, &ust); err != nil {
		return nil, fmt.Errorf("overlay: upper dir %s: %w", up, err)
	}
	if err := unix.Stat(wd, &wst); err != nil {
		return nil, fmt.Errorf("overlay: work dir %s: %w", wd, err)
	}
	if ust.Dev != wst.Dev {
		return nil, fmt.Errorf("overlay: upper dir %s and work dir %s are on different file systems: %w", up, wd, unix.EXDEV)
	}
	d := &dirs{upper: up, scratch: filepath.Join(wd, "work"), upperFd: -1, workFd: -1}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	for _, p := range []string{up, wd} {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("overlay: open %s: %w", p, err)
		}
		d.locks = append(d.locks, fd)
		if handover {
			continue // locked by the predecessor until it exits (lock)
		}
		if err := lockDir(fd); err != nil {
			return nil, fmt.Errorf("overlay: %s is in use by another overlay: %w", p, err)
		}
	}
	if handover {
		// The predecessor may still be copying up in the work dir.
		if err := os.Mkdir(d.scratch, 0); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("overlay: work dir: %w", err)
		}
	} else {
		if err := os.RemoveAll(d.scratch); err != nil {
			return nil, fmt.Errorf("overlay: clean work dir: %w", err)
		}
		if err := os.Mkdir(d.scratch, 0); err != nil {
			return nil, fmt.Errorf("overlay: work dir: %w", err)
		}
	}
	if d.upperFd, err = unix.Open(up, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("overlay: open upper dir: %w", err)
	}
	if d.workFd, err = unix.Open(d.scratch, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("overlay: open work dir: %w", err)
	}
	return d, nil
}

// inside reports whether p is dir or below it.
func inside(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// lock takes the locks of the upper and work directories that openDirs
// left to the predecessor of a handover, waiting up to timeout for it to
// exit.
func (d *dirs) lock(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for i, fd := range d.locks {
		for {
			err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
			if err == nil {
				break
			}
			if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
				return fmt.Errorf("overlay: %s is still in use (by the daemon handing over?): %w", []string{d.upper, filepath.Dir(d.scratch)}[i], err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

func (d *dirs) close() error {
	var errs []error
	for _, fd := range append([]int{d.upperFd, d.workFd}, d.locks...) {
		if fd >= 0 {
			errs = append(errs, unix.Close(fd))
		}
	}
	d.upperFd, d.workFd, d.locks = -1, -1, nil
	return errors.Join(errs...)
}

// lockWait bounds how long lockDir waits for a previous overlay on the same
// dirs to let go: one that was killed releases its lock only when the
// kernel has finished tearing the process down, which takes a moment after
// the kill on a loaded machine.
const lockWait = 5 * time.Second

// lockDir takes the exclusive lock on an upper or work dir, retrying while
// another holder (most likely an exiting one) keeps it, for up to lockWait.
func lockDir(fd int) error {
	deadline := time.Now().Add(lockWait)
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
