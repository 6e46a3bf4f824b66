package overlay

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Extended attributes have no *at calls before Linux 6.13, and the f*
// calls refuse O_PATH descriptors (the only kind a symlink or a device
// can be opened as without side effects). So an upper object's xattrs
// are reached through /proc/self/fd/N of an O_PATH descriptor opened
// without following a symlink: that link leads to the object itself,
// whatever is done meanwhile to the names above it.

// withObj calls fn with a path naming the object name in the directory
// dirfd (never through a symlink), valid while fn runs.
func withObj(dirfd int, name string, fn func(p string) error) error {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return fn(procPath(fd))
}

func procPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// getxattrAt reads attr of name in dirfd into dest; with ERANGE, k is the
// size needed.
func getxattrAt(dirfd int, name, attr string, dest []byte) (k int, err error) {
	k, err = getxattrat(dirfd, name, attr, dest)
	if errors.Is(err, unix.ERANGE) {
		if sz, err2 := getxattrat(dirfd, name, attr, nil); err2 == nil {
			k = sz
		}
	}
	if !errors.Is(err, errNoAtCall) {
		return k, err
	}
	err = withObj(dirfd, name, func(p string) error {
		k, err = unix.Getxattr(p, attr, dest)
		if errors.Is(err, unix.ERANGE) {
			if sz, err2 := unix.Getxattr(p, attr, nil); err2 == nil {
				k = sz
			}
		}
		return err
	})
	return k, err
}

func setxattrAt(dirfd int, name, attr string, data []byte, flags int) error {
	return withObj(dirfd, name, func(p string) error { return unix.Setxattr(p, attr, data, flags) })
}

func removexattrAt(dirfd int, name, attr string) error {
	return withObj(dirfd, name, func(p string) error { return unix.Removexattr(p, attr) })
}

// listxattrAt lists the names of the xattrs of name in dirfd.
func listxattrAt(dirfd int, name string) ([]string, error) {
	names, err := listNames(func(buf []byte) (int, error) { return listxattrat(dirfd, name, buf) })
	if errors.Is(err, errNoAtCall) {
		err = withObj(dirfd, name, func(p string) error {
			names, err = listNames(func(buf []byte) (int, error) { return unix.Listxattr(p, buf) })
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", name, err)
	}
	return names, nil
}

// listNames calls list with a buffer grown until the names fit, and
// splits them.
func listNames(list func(buf []byte) (int, error)) (names []string, err error) {
	buf := make([]byte, 1024)
	for {
		k, err := list(buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, len(buf)*4)
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, err
		}
		for _, x := range strings.Split(string(buf[:k]), "\x00") {
			if x != "" {
				names = append(names, x)
			}
		}
		return names, nil
	}
}
