package overlay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

var (
	_ gofs.NodeGetxattrer    = (*node)(nil)
	_ gofs.NodeSetxattrer    = (*node)(nil)
	_ gofs.NodeRemovexattrer = (*node)(nil)
	_ gofs.NodeListxattrer   = (*node)(nil)
)

// private reports the overlay's own xattrs, which the merged view hides.
func (f *FS) private(name string) bool { return strings.HasPrefix(name, f.xattrNS) }

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if n.fs.private(attr) {
		return 0, syscall.ENODATA
	}
	if k, errno, ok := n.getUpperXattr(ctx, attr, dest); ok {
		return k, errno
	}
	e, err := n.resolveSelf(ctx)
	if err != nil {
		return 0, n.fs.errno(ctx, "getxattr", err)
	}
	if e.upper != nil {
		a, err := e.at(n.fs)
		if err != nil {
			return 0, n.fs.errno(ctx, "getxattr", err)
		}
		k, err := getxattrAt(a.dir.fd, a.name, attr, dest)
		a.release()
		if errors.Is(err, unix.ERANGE) {
			return uint32(k), syscall.ERANGE
		}
		if err != nil {
			return 0, n.fs.errno(ctx, "getxattr", err)
		}
		return uint32(k), 0
	}
	xs, err := e.lower.Xattrs(ctx)
	if err != nil {
		return 0, n.fs.errno(ctx, "getxattr", err)
	}
	for _, x := range xs {
		if x.Name == attr {
			if len(dest) == 0 {
				return uint32(len(x.Value)), 0
			}
			if len(dest) < len(x.Value) {
				return uint32(len(x.Value)), syscall.ERANGE
			}
			return uint32(copy(dest, x.Value)), 0
		}
	}
	return 0, syscall.ENODATA
}

// getUpperXattr answers GETXATTR (the kernel asks for security.capability
// before every write) for a node with no lower object, which lives in the
// upper tree, without resolving it first. ok false (its upper object is
// not where its path says) leaves it to the full resolution.
func (n *node) getUpperXattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno, bool) {
	if k, ok, err := n.getxattrOpened(attr, dest); ok {
		if errors.Is(err, unix.ERANGE) {
			return k, syscall.ERANGE, true
		}
		return k, n.fs.errno(ctx, "getxattr", err), true
	}
	if n.getLower() != nil {
		return 0, 0, false
	}
	a, err := n.upperAt()
	if err != nil {
		return 0, 0, false
	}
	k, err := getxattrAt(a.dir.fd, a.name, attr, dest)
	a.release()
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		return 0, 0, false
	case errors.Is(err, unix.ERANGE):
		return uint32(k), syscall.ERANGE, true
	}
	if err != nil {
		return 0, n.fs.errno(ctx, "getxattr", err), true
	}
	return uint32(k), 0, true
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	e, err := n.resolveSelf(ctx)
	if err != nil {
		return 0, n.fs.errno(ctx, "listxattr", err)
	}
	var names []string
	if e.upper != nil {
		a, err := e.at(n.fs)
		if err != nil {
			return 0, n.fs.errno(ctx, "listxattr", err)
		}
		names, err = listxattrAt(a.dir.fd, a.name)
		a.release()
		if err != nil {
			return 0, n.fs.errno(ctx, "listxattr", err)
		}
	} else {
		xs, err := e.lower.Xattrs(ctx)
		if err != nil {
			return 0, n.fs.errno(ctx, "listxattr", err)
		}
		for _, x := range xs {
			names = append(names, x.Name)
		}
	}
	var buf []byte
	for _, name := range names {
		if !n.fs.private(name) && name != fuseOverlayfsOpaque {
			buf = append(append(buf, name...), 0)
		}
	}
	if len(dest) == 0 {
		return uint32(len(buf)), 0
	}
	if len(dest) < len(buf) {
		return uint32(len(buf)), syscall.ERANGE
	}
	return uint32(copy(dest, buf)), 0
}

func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if n.fs.private(attr) {
		return syscall.EPERM
	}
	n.fs.mu.Lock()
	e, err := n.fs.copyUpNode(ctx, n, true)
	n.fs.mu.Unlock()
	if err == nil {
		err = e.atDo(n.fs, func(dirfd int, name string) error { return setxattrAt(dirfd, name, attr, data, int(flags)) })
	}
	return n.fs.errno(ctx, "setxattr", err)
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if n.fs.private(attr) {
		return syscall.ENODATA
	}
	e, err := n.resolveSelf(ctx)
	if err != nil {
		return n.fs.errno(ctx, "removexattr", err)
	}
	if e.upper == nil {
		// Nothing to remove is no reason to copy up.
		xs, err := e.lower.Xattrs(ctx)
		if err != nil {
			return n.fs.errno(ctx, "removexattr", err)
		}
		found := false
		for _, x := range xs {
			found = found || x.Name == attr
		}
		if !found {
			return syscall.ENODATA
		}
	}
	n.fs.mu.Lock()
	e, err = n.fs.copyUpNode(ctx, n, true)
	n.fs.mu.Unlock()
	if err == nil {
		err = e.atDo(n.fs, func(dirfd int, name string) error { return removexattrAt(dirfd, name, attr) })
	}
	if err != nil && !errors.Is(err, unix.ENODATA) {
		err = fmt.Errorf("removexattr %s: %w", attr, err)
	}
	return n.fs.errno(ctx, "removexattr", err)
}
