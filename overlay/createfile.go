package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// createInUpperDir creates the regular file name in n when n is a
// directory in the upper tree, in the fewest system calls: once the lower
// part of n (if any) has no such name, a name free in the upper directory
// is free in the overlay, so O_EXCL decides, and owner, mode and the
// reply's attributes go through the new descriptor. ok false (the lower
// part has the name, n is not in the upper tree yet, or the name is taken
// in the upper directory, maybe by a whiteout) leaves the request to
// create's full resolution. The caller holds f.mu.
func (n *node) createInUpperDir(ctx context.Context, name string, flags, mode uint32) (e *entry, fd int, ok bool, err error) {
	if l := n.getLower(); l != nil {
		if _, err := l.Lookup(ctx, name); !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return nil, -1, false, nil
		}
	}
	p, err := n.path()
	if err != nil {
		return nil, -1, false, err
	}
	d, err := n.upperDir()
	if err != nil {
		return nil, -1, false, nil // not in the upper tree yet
	}
	defer d.release()
	var dir unix.Statx_t
	if err := unix.Statx(d.fd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS, &dir); err != nil {
		return nil, -1, false, nil
	}
	e = &entry{path: join(p, name), dir: n, name: name}
	// O_NONBLOCK means nothing for a regular file, but would have Go try
	// (and fail) to register the descriptor with its poller.
	fd, err = unix.Openat(d.fd, name, openFlags(flags)&^unix.O_NONBLOCK|unix.O_CREAT|unix.O_EXCL, mode&0o7777)
	if errors.Is(err, unix.EEXIST) {
		return nil, -1, false, nil
	}
	if err != nil {
		return nil, -1, false, fmt.Errorf("create %s: %w", e.path, err)
	}
	if e.upper, err = setupNewFile(ctx, fd, &dir, mode); err != nil {
		unix.Close(fd)
		unix.Unlinkat(d.fd, name, 0)
		return nil, -1, false, fmt.Errorf("create %s: %w", e.path, err)
	}
	n.fs.born(e.upper)
	return e, fd, true, nil
}

// setupNewFile gives the file just created as fd, in the directory whose
// stat is dir, its owner and mode (owner first, as create does), and
// returns its stat. What the file got at creation already (the server's
// own ids, a mode the umask left whole) is not set again: two system
// calls less per file in the common case.
func setupNewFile(ctx context.Context, fd int, dir *unix.Statx_t, mode uint32) (*unix.Statx_t, error) {
	uid, gid, _ := owner(ctx, dir)
	var st unix.Statx_t
	if err := statFd(fd, &st); err != nil {
		return nil, err
	}
	changed := false
	if st.Uid != uint32(uid) || st.Gid != uint32(gid) {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return nil, fmt.Errorf("chown: %w", err)
		}
		changed = true
	}
	// A chown may have cleared set-ID bits: the mode is set after it.
	if changed || uint32(st.Mode)&0o7777 != mode&0o7777 {
		if err := unix.Fchmod(fd, mode&0o7777); err != nil {
			return nil, fmt.Errorf("chmod: %w", err)
		}
		if err := statFd(fd, &st); err != nil {
			return nil, err
		}
	}
	return &st, nil
}

// statFd stats the open file fd (basic stats and birth time).
func statFd(fd int, st *unix.Statx_t) error {
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS|unix.STATX_BTIME, st); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	return nil
}
