package fuseuring

// The FUSE control file system (fusectl): how the transport finds its
// connection and ends it. Once the kernel has switched a connection to
// the rings it never hands requests back to /dev/fuse, so a transport
// that stops serving a live connection must abort it, or the callers of
// the requests queued on the rings wait forever (state D, unkillable).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FusectlDir is where the kernel's FUSE control file system is mounted.
const FusectlDir = "/sys/fs/fuse/connections"

// MountFusectl mounts the FUSE control file system on FusectlDir unless it
// is mounted already (root only; a fresh machine often has it unmounted).
func MountFusectl() error {
	var st, parent unix.Stat_t
	if err := unix.Stat(FusectlDir, &st); err != nil {
		return fmt.Errorf("fuseuring: %w", err)
	}
	if err := unix.Stat(filepath.Dir(FusectlDir), &parent); err != nil {
		return fmt.Errorf("fuseuring: %w", err)
	}
	if st.Dev != parent.Dev {
		return nil // mounted
	}
	if err := unix.Mount("none", FusectlDir, "fusectl", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("fuseuring: mount fusectl on %s: %w", FusectlDir, err)
	}
	return nil
}

// AbortConn aborts FUSE connection conn (its id in FusectlDir), mounting
// fusectl first if needed: every request of the connection, queued, read
// or on a ring, ends with an error and new ones fail with ENOTCONN.
// A connection that has ended already is not an error.
func AbortConn(conn int) error {
	if conn < 0 {
		return errors.New("fuseuring: unknown FUSE connection")
	}
	if err := MountFusectl(); err != nil {
		return err
	}
	err := os.WriteFile(filepath.Join(FusectlDir, strconv.Itoa(conn), "abort"), []byte("1"), 0o200)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fuseuring: abort FUSE connection %d: %w", conn, err)
	}
	return nil
}

// ConnAlive reports whether FUSE connection conn still exists (fusectl
// lists it until the kernel frees it).
func ConnAlive(conn int) (bool, error) {
	if err := MountFusectl(); err != nil {
		return false, err
	}
	_, err := os.Stat(filepath.Join(FusectlDir, strconv.Itoa(conn)))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// ConnWaiting returns the number of requests of connection conn that wait
// for an answer (fusectl's waiting file).
func ConnWaiting(conn int) (int, error) {
	if err := MountFusectl(); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(filepath.Join(FusectlDir, strconv.Itoa(conn), "waiting"))
	if err != nil {
		return 0, fmt.Errorf("fuseuring: %w", err)
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// ConnOf returns the FUSE connection id of the FUSE mount at dir (the
// topmost one if several are stacked) from /proc/self/mountinfo, without
// sending a request to it. The id is the mount's device number as the
// kernel prints it (major<<20 | minor).
func ConnOf(dir string) (int, error) {
	dir = filepath.Clean(dir)
	if parent, err := filepath.EvalSymlinks(filepath.Dir(dir)); err == nil {
		dir = filepath.Join(parent, filepath.Base(dir))
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return -1, fmt.Errorf("fuseuring: %w", err)
	}
	conn := -1
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, s := range f {
			if s == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(f) || len(f) < 5 || unescapeMountinfo(f[4]) != dir {
			continue
		}
		if fstype := f[sep+1]; fstype != "fuse" && !strings.HasPrefix(fstype, "fuse.") && fstype != "fuseblk" && !strings.HasPrefix(fstype, "fuseblk.") {
			continue
		}
		var major, minor int
		if _, err := fmt.Sscanf(f[2], "%d:%d", &major, &minor); err == nil {
			conn = major<<20 | minor
		}
	}
	if conn < 0 {
		return -1, fmt.Errorf("fuseuring: no FUSE mount at %s in /proc/self/mountinfo", dir)
	}
	return conn, nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, ...) of a
// mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
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
