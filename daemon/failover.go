package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/fuseuring"
)

// Failover policies (--failover-policy): what a daemon taking a session
// over does about the requests its predecessor read and never answered.
const (
	// FailoverResend has the kernel queue them again (FUSE_NOTIFY_RESEND,
	// Linux 6.9+, FUSE 7.40).
	FailoverResend = "resend"
	// FailoverFlush has the kernel abort them, through the fusectl
	// connection's flush file, which mainline kernels lack.
	FailoverFlush = "flush"
	// FailoverNone leaves them: their callers wait forever.
	FailoverNone = "none"
)

// capHasResend is FUSE_HAS_RESEND, which kernels that take
// FUSE_NOTIFY_RESEND offer in INIT.
const capHasResend = 1 << 39

// notifyResend is FUSE_NOTIFY_RESEND's notification code.
const notifyResend = 7

// connDir returns the fusectl directory of the connection mounted at dir
// (mounting fusectl if needed), found in the mount table, not by stat: no
// request may reach a session nobody serves.
func connDir(dir string) (string, error) {
	conn, err := fuseuring.ConnOf(dir)
	if err != nil {
		return "", err
	}
	if err := fuseuring.MountFusectl(); err != nil {
		return "", err
	}
	return filepath.Join(fuseuring.FusectlDir, strconv.Itoa(conn)), nil
}

// Mounted reports whether a FUSE session is mounted at dir, from the
// mount table (dir itself is not touched: nobody may serve it).
func Mounted(dir string) bool {
	_, err := fuseuring.ConnOf(dir)
	return err == nil
}

// checkPolicy checks, when the session is mounted, that the kernel can
// do what the failover policy needs, so a daemon that could not be taken
// over as configured fails at start, not at its first crash.
// Without a supervisor no successor takes over, and the policy is moot.
func (d *Daemon) checkPolicy(dir string, initIn []byte) error {
	switch d.opts.FailoverPolicy {
	case FailoverResend, FailoverFlush, FailoverNone:
	default:
		return fmt.Errorf("%w: failover policy %q is not resend, flush or none", ErrInvalidInput, d.opts.FailoverPolicy)
	}
	if d.opts.Supervisor == "" {
		return nil
	}
	switch d.opts.FailoverPolicy {
	case FailoverResend:
		if initInFlags(initIn)&capHasResend == 0 {
			return fmt.Errorf("%w: --failover-policy resend: this kernel does not offer FUSE_NOTIFY_RESEND (FUSE 7.40, Linux 6.9+), so requests a crashed daemon read would hang; use a newer kernel or --failover-policy none", ErrUnsupported)
		}
	case FailoverFlush:
		cd, err := connDir(dir)
		if err == nil {
			_, err = os.Stat(filepath.Join(cd, "flush"))
		}
		if err != nil {
			return fmt.Errorf("%w: --failover-policy flush needs the fusectl file %s/<connection>/flush, which this kernel lacks (mainline kernels have none; only some vendor kernels): %w; use --failover-policy resend", ErrUnsupported, fuseuring.FusectlDir, err)
		}
	}
	return nil
}

// drain applies the failover policy on a session taken over, before its
// server starts reading.
func (d *Daemon) drain(fd int, dir string) error {
	switch d.opts.FailoverPolicy {
	case FailoverResend:
		// fuse_out_header{len 16, error NOTIFY_RESEND, unique 0}.
		var h [16]byte
		binary.LittleEndian.PutUint32(h[0:], 16)
		binary.LittleEndian.PutUint32(h[4:], notifyResend)
		_, err := unix.Write(fd, h[:])
		if err == nil {
			return nil
		}
		if ferr := writeConnFile(dir, "resend"); ferr != nil {
			return fmt.Errorf("%w: FUSE_NOTIFY_RESEND: %w (the kernel needs FUSE 7.40, Linux 6.9+); fusectl resend: %w", ErrUnsupported, err, ferr)
		}
	case FailoverFlush:
		return writeConnFile(dir, "flush")
	}
	return nil
}

func writeConnFile(dir, name string) error {
	cd, err := connDir(dir)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(cd, name), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("1")
	return errors.Join(err, f.Close())
}
