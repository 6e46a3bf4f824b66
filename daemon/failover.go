package daemon

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
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

// fusectlDir is where the kernel lists FUSE connections (fusectl).
const fusectlDir = "/sys/fs/fuse/connections"

// connDir returns the fusectl directory of the connection mounted at
// dir: its name is the mount's device number in the kernel's encoding.
// It is read from the mount table, not by stat: no request may reach a
// session nobody serves.
func connDir(dir string) (string, error) {
	dev, err := mountDev(dir)
	if err != nil {
		return "", err
	}
	return filepath.Join(fusectlDir, fmt.Sprint(dev)), nil
}

// mountDev returns the device number (major<<20|minor) of the last mount
// at dir in /proc/self/mountinfo.
func mountDev(dir string) (uint64, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0, err
	}
	dir = filepath.Clean(dir)
	var dev uint64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || unescapeMount(f[4]) != dir {
			continue
		}
		var major, minor uint64
		if _, err := fmt.Sscanf(f[2], "%d:%d", &major, &minor); err == nil {
			dev, found = major<<20|minor, true
		}
	}
	if !found {
		return 0, fmt.Errorf("%s is not in the mount table", dir)
	}
	return dev, nil
}

// unescapeMount undoes the octal escapes (\040 for a space) of a path in
// the mount table.
func unescapeMount(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Mounted reports whether dir is a mount point in the mount table (read
// without touching dir, which may be a FUSE mount nobody serves).
func Mounted(dir string) bool {
	_, err := mountDev(dir)
	return err == nil
}

// checkPolicy checks, when the session is mounted, that the kernel can
// do what the failover policy needs, so a daemon that could not be taken
// over as configured fails at start, not at its first crash.
func (d *Daemon) checkPolicy(dir string, initIn []byte) error {
	switch d.opts.FailoverPolicy {
	case FailoverResend:
		if d.opts.Supervisor != "" && initInFlags(initIn)&capHasResend == 0 {
			return fmt.Errorf("%w: --failover-policy resend: this kernel does not offer FUSE_NOTIFY_RESEND (FUSE 7.40, Linux 6.9+), so requests a crashed daemon read would hang; use a newer kernel or --failover-policy none", ErrUnsupported)
		}
	case FailoverFlush:
		cd, err := connDir(dir)
		if err == nil {
			_, err = os.Stat(filepath.Join(cd, "flush"))
		}
		if err != nil {
			return fmt.Errorf("%w: --failover-policy flush needs the fusectl file %s/<connection>/flush, which this kernel lacks (mainline kernels have none; only some vendor kernels): %v; use --failover-policy resend", ErrUnsupported, fusectlDir, err)
		}
	case FailoverNone:
	default:
		return fmt.Errorf("%w: failover policy %q is not resend, flush or none", ErrInvalidInput, d.opts.FailoverPolicy)
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
			return fmt.Errorf("%w: FUSE_NOTIFY_RESEND: %v (the kernel needs FUSE 7.40, Linux 6.9+); fusectl resend: %v", ErrUnsupported, err, ferr)
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
