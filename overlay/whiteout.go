package overlay

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// opaqueName is the xattr marking an upper directory opaque.
func (f *FS) opaqueName() string { return f.xattrNS + "opaque" }

// fuseOverlayfsOpaque is what fuse-overlayfs (and nydusd) write; it is
// honoured when reading.
const fuseOverlayfsOpaque = "user.fuseoverlayfs.opaque"

func (f *FS) isOpaque(p string) (bool, error) {
	// One listxattr answers for most directories, which have no xattrs.
	var names [1024]byte
	n, err := unix.Llistxattr(f.full(p), names[:])
	switch {
	case errors.Is(err, unix.ENOTSUP):
		return false, nil
	case err == nil && n == 0:
		return false, nil
	case err != nil && !errors.Is(err, unix.ERANGE):
		return false, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	for _, name := range []string{f.opaqueName(), fuseOverlayfsOpaque} {
		var b [4]byte
		n, err := unix.Lgetxattr(f.full(p), name, b[:])
		if err == nil {
			if n == 1 && b[0] == 'y' {
				return true, nil
			}
			continue
		}
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ERANGE) {
			continue
		}
		return false, fmt.Errorf("opaque xattr of %s: %w", p, err)
	}
	return false, nil
}

// setOpaque marks the directory at abs (an absolute path) opaque.
func (f *FS) setOpaque(abs string) error {
	if err := unix.Lsetxattr(abs, f.opaqueName(), []byte("y"), 0); err != nil {
		return fmt.Errorf("set opaque on %s: %w", abs, err)
	}
	return nil
}

// workPath is the absolute path of a work directory entry.
func (f *FS) workPath(name string) string { return f.workDir + "/" + name }

// newWhiteout creates a whiteout in the work directory and returns its name.
func (f *FS) newWhiteout() (string, error) {
	tmp := f.tmpName()
	if err := unix.Mknodat(f.workFd, tmp, unix.S_IFCHR, 0); err != nil {
		return "", fmt.Errorf("create whiteout: %w", err)
	}
	return tmp, nil
}

// whiteout puts a whiteout at the upper path p, replacing what is there
// (hasUpper) atomically, as the kernel does: the whiteout is built in the
// work directory and exchanged with the upper object, which is then
// removed from the work directory.
func (f *FS) whiteout(p string, hasUpper, upperIsDir bool) error {
	tmp, err := f.newWhiteout()
	if err != nil {
		return err
	}
	if !hasUpper {
		if err := unix.Renameat(f.workFd, tmp, f.upperFd, p); err != nil {
			unix.Unlinkat(f.workFd, tmp, 0)
			return fmt.Errorf("whiteout %s: %w", p, err)
		}
		return nil
	}
	if err := unix.Renameat2(f.workFd, tmp, f.upperFd, p, unix.RENAME_EXCHANGE); err != nil {
		unix.Unlinkat(f.workFd, tmp, 0)
		return fmt.Errorf("whiteout %s: %w", p, err)
	}
	flag := 0
	if upperIsDir {
		flag = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(f.workFd, tmp, flag); err != nil {
		return fmt.Errorf("whiteout %s: remove replaced object: %w", p, err)
	}
	return nil
}

// replaceWhiteout moves the object built at work entry tmp over the
// whiteout at upper path p and removes the whiteout.
func (f *FS) replaceWhiteout(tmp, p string) error {
	if err := unix.Renameat2(f.workFd, tmp, f.upperFd, p, unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("replace whiteout %s: %w", p, err)
	}
	if err := unix.Unlinkat(f.workFd, tmp, 0); err != nil {
		return fmt.Errorf("replace whiteout %s: remove it: %w", p, err)
	}
	return nil
}

// clearWhiteouts removes the whiteouts inside the upper directory p (whose
// merged view is empty), so it can be removed or replaced.
func (f *FS) clearWhiteouts(p string) error {
	names, err := f.upperNames(p)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := unix.Unlinkat(f.upperFd, join(p, name), 0); err != nil {
			return fmt.Errorf("clear whiteout %s: %w", join(p, name), err)
		}
	}
	return nil
}
