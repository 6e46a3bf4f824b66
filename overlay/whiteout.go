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

// opaqueOf reports whether e's upper directory is opaque, reading it if
// resolve did not.
func (f *FS) opaqueOf(e *entry) (bool, error) {
	if e.opaqueOK || e.upper == nil || uint32(e.upper.Mode)&unix.S_IFMT != unix.S_IFDIR {
		return e.opaque, nil
	}
	o, err := f.isOpaque(e)
	if err != nil {
		return false, err
	}
	e.opaque, e.opaqueOK = o, true
	return o, nil
}

// isOpaque reports whether e's upper directory is opaque.
func (f *FS) isOpaque(e *entry) (bool, error) {
	a, err := e.at(f)
	if err != nil {
		return false, err
	}
	defer a.release()
	opaque, err := f.opaqueAt(
		func(buf []byte) (int, error) { return listxattrat(a.dir.fd, a.name, buf) },
		func(attr string, buf []byte) (int, error) { return getxattrat(a.dir.fd, a.name, attr, buf) })
	if errors.Is(err, errNoAtCall) {
		err = withObj(a.dir.fd, a.name, func(p string) error {
			opaque, err = f.opaqueAt(
				func(buf []byte) (int, error) { return unix.Listxattr(p, buf) },
				func(attr string, buf []byte) (int, error) { return unix.Getxattr(p, attr, buf) })
			return err
		})
	}
	if err != nil {
		return false, fmt.Errorf("opaque xattr of %s: %w", e.path, err)
	}
	return opaque, nil
}

// opaqueAt reports whether a directory is opaque, given how to list its
// xattrs and read one.
func (f *FS) opaqueAt(list func(buf []byte) (int, error), get func(attr string, buf []byte) (int, error)) (bool, error) {
	// One listxattr answers for most directories, which have no xattrs.
	var names [1024]byte
	n, err := list(names[:])
	switch {
	case errors.Is(err, unix.ENOTSUP):
		return false, nil
	case err == nil && n == 0:
		return false, nil
	case err != nil && !errors.Is(err, unix.ERANGE):
		return false, fmt.Errorf("list xattrs: %w", err)
	}
	for _, name := range []string{f.opaqueName(), fuseOverlayfsOpaque} {
		var b [4]byte
		n, err := get(name, b[:])
		if err == nil {
			if n == 1 && b[0] == 'y' {
				return true, nil
			}
			continue
		}
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ERANGE) {
			continue
		}
		return false, err
	}
	return false, nil
}

// setOpaque marks the directory name in dirfd opaque.
func (f *FS) setOpaque(dirfd int, name string) error {
	if err := setxattrAt(dirfd, name, f.opaqueName(), []byte("y"), 0); err != nil {
		return fmt.Errorf("set opaque on %s: %w", name, err)
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

// whiteout puts a whiteout at name in the upper directory dirfd,
// replacing what is there (hasUpper) atomically, as the kernel does: the
// whiteout is built in the work directory and exchanged with the upper
// object, which is then removed from the work directory.
func (f *FS) whiteout(dirfd int, name string, hasUpper, upperIsDir bool) error {
	tmp, err := f.newWhiteout()
	if err != nil {
		return err
	}
	if !hasUpper {
		if err := unix.Renameat(f.workFd, tmp, dirfd, name); err != nil {
			unix.Unlinkat(f.workFd, tmp, 0)
			return fmt.Errorf("whiteout %s: %w", name, err)
		}
		return nil
	}
	if err := f.exchange(f.workFd, tmp, dirfd, name); err != nil {
		unix.Unlinkat(f.workFd, tmp, 0)
		return fmt.Errorf("whiteout %s: %w", name, err)
	}
	flag := 0
	if upperIsDir {
		flag = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(f.workFd, tmp, flag); err != nil {
		return fmt.Errorf("whiteout %s: remove replaced object: %w", name, err)
	}
	return nil
}

// replaceWhiteout moves the object built at work entry tmp over the
// whiteout name in the upper directory dirfd and removes the whiteout.
func (f *FS) replaceWhiteout(tmp string, dirfd int, name string) error {
	if err := f.exchange(f.workFd, tmp, dirfd, name); err != nil {
		return fmt.Errorf("replace whiteout %s: %w", name, err)
	}
	if err := unix.Unlinkat(f.workFd, tmp, 0); err != nil {
		return fmt.Errorf("replace whiteout %s: remove it: %w", name, err)
	}
	return nil
}

// clearWhiteouts removes the whiteouts inside the upper directory name of
// dirfd (whose merged view is empty), so it can be removed or replaced.
func (f *FS) clearWhiteouts(dirfd int, name string) error {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("clear whiteouts in %s: %w", name, err)
	}
	defer unix.Close(fd)
	_, whiteouts, err := readUpperFd(fd)
	if err != nil {
		return err
	}
	for _, w := range whiteouts {
		if err := unix.Unlinkat(fd, w, 0); err != nil {
			return fmt.Errorf("clear whiteout %s/%s: %w", name, w, err)
		}
	}
	return nil
}
