package graphdriver

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// mountEntry is one mount of /proc/self/mountinfo.
type mountEntry struct {
	Point  string
	FSType string
}

// mountsUnder lists the mounts at or below dir.
func mountsUnder(dir string) ([]mountEntry, error) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("graphdriver: %w", err)
	}
	out := make([]mountEntry, 0, len(ms))
	for _, m := range ms {
		out = append(out, mountEntry{Point: m.Mountpoint, FSType: m.FSType})
	}
	return out, nil
}

// mountedAt returns the filesystem type mounted exactly at dir, or "".
func mountedAt(dir string) (string, error) {
	ms, err := mountsUnder(filepath.Clean(dir))
	if err != nil {
		return "", err
	}
	fstype := ""
	for _, m := range ms {
		if m.Point == dir {
			fstype = m.FSType // the last one is the top of a stack
		}
	}
	return fstype, nil
}

// unmountIfMounted unmounts everything at dir (lazily when busy).
func unmountIfMounted(dir string) error {
	for range 8 {
		t, err := mountedAt(dir)
		if err != nil || t == "" {
			return err
		}
		if err := unix.Unmount(dir, 0); err != nil {
			if errors.Is(err, unix.EBUSY) {
				err = unix.Unmount(dir, unix.MNT_DETACH)
			}
			if err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("graphdriver: unmount %s: %w", dir, err)
			}
		}
	}
	return fmt.Errorf("graphdriver: %s stays mounted", dir)
}
