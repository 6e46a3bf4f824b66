package overlay

import (
	"errors"

	"golang.org/x/sys/unix"
)

// chmodAt changes the mode of name in dirfd, never through a symlink:
// with fchmodat2 (Linux 6.6+), or else through an O_PATH descriptor of
// the object itself.
func chmodAt(dirfd int, name string, mode uint32) error {
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	return withObj(dirfd, name, func(p string) error {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return unix.EOPNOTSUPP
		}
		return unix.Chmod(p, mode)
	})
}

// truncateAt truncates the regular file name in dirfd (never through a
// symlink, and without blocking on a FIFO that took its place).
func truncateAt(dirfd int, name string, size int64) error {
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Ftruncate(fd, size)
}
