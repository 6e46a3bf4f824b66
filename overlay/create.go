package overlay

import (
	"context"
	"fmt"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

var (
	_ gofs.NodeCreater   = (*node)(nil)
	_ gofs.NodeMkdirer   = (*node)(nil)
	_ gofs.NodeMknoder   = (*node)(nil)
	_ gofs.NodeSymlinker = (*node)(nil)
	_ gofs.NodeLinker    = (*node)(nil)
)

// maker creates an object named name in the directory dirfd.
type maker func(dirfd int, name string) error

// owner is the owner a new object gets: the caller's fsuid, and its fsgid
// unless the directory is set-group-ID.
func owner(ctx context.Context, dir *unix.Statx_t) (uid, gid int, sgid bool) {
	uid, gid = 0, 0
	if c, ok := fuse.FromContext(ctx); ok {
		uid, gid = int(c.Uid), int(c.Gid)
	}
	if uint32(dir.Mode)&unix.S_ISGID != 0 {
		return uid, int(dir.Gid), true
	}
	return uid, gid, false
}

// create makes a new object called name in n: in place, or, when a
// whiteout holds the name, in the work directory and exchanged with the
// whiteout (a directory made there is opaque, so nothing of the lower
// directory it replaces shows through). The caller holds f.mu.
func (n *node) create(ctx context.Context, name string, mode uint32, mk maker) (*entry, error) {
	e, err := n.fs.resolve(ctx, n, name)
	if err != nil {
		return nil, err
	}
	if e.exists() {
		return nil, fmt.Errorf("create %s: %w", e.path, syscall.EEXIST)
	}
	de, err := n.fs.copyUpNode(ctx, n, true)
	if err != nil {
		return nil, err
	}
	uid, gid, sgid := owner(ctx, de.upper)
	isDir := mode&unix.S_IFMT == unix.S_IFDIR
	perm := mode & 0o7777
	if isDir && sgid {
		perm |= unix.S_ISGID
	}
	d, err := n.upperDir()
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", e.path, err)
	}
	defer d.release()
	dirfd, target := d.fd, name
	if e.whiteout {
		dirfd, target = n.fs.workFd, n.fs.tmpName()
	}
	if err := mk(dirfd, target); err != nil {
		return nil, fmt.Errorf("create %s: %w", e.path, err)
	}
	undo := func() {
		if isDir {
			unix.Unlinkat(dirfd, target, unix.AT_REMOVEDIR)
		} else {
			unix.Unlinkat(dirfd, target, 0)
		}
	}
	if err := unix.Fchownat(dirfd, target, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		undo()
		return nil, fmt.Errorf("create %s: chown: %w", e.path, err)
	}
	if mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(dirfd, target, perm, 0); err != nil {
			undo()
			return nil, fmt.Errorf("create %s: chmod: %w", e.path, err)
		}
	}
	if e.whiteout {
		if isDir {
			if err := n.fs.setOpaque(dirfd, target); err != nil {
				undo()
				return nil, err
			}
		}
		if err := n.fs.replaceWhiteout(target, d.fd, name); err != nil {
			undo()
			return nil, err
		}
		e.whiteout = false
	}
	if e.upper, err = statAt(d.fd, name); err != nil {
		return nil, err
	}
	n.fs.born(e.upper)
	return e, nil
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	n.fs.mu.Lock()
	e, fd, ok, err := n.createInUpperDir(ctx, name, flags, mode)
	if err == nil && !ok {
		e, err = n.create(ctx, name, unix.S_IFREG|mode, func(dirfd int, name string) error {
			var err error
			fd, err = unix.Openat(dirfd, name, openFlags(flags)|unix.O_CREAT|unix.O_EXCL, mode&0o7777)
			return err
		})
	}
	n.fs.mu.Unlock()
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, nil, 0, n.fs.errno(ctx, "create", err)
	}
	ch := n.newChild(ctx, e, &out.Attr)
	return ch, asNode(ch).newUpperFile(fd), fuse.FOPEN_KEEP_CACHE, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return n.makeNode(ctx, "mkdir", name, unix.S_IFDIR|mode, func(dirfd int, name string) error {
		return unix.Mkdirat(dirfd, name, 0o700)
	}, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return n.makeNode(ctx, "mknod", name, mode, func(dirfd int, name string) error {
		return unix.Mknodat(dirfd, name, mode&unix.S_IFMT|0o600, int(dev))
	}, out)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return n.makeNode(ctx, "symlink", name, unix.S_IFLNK|0o777, func(dirfd int, name string) error {
		return unix.Symlinkat(target, dirfd, name)
	}, out)
}

func (n *node) makeNode(ctx context.Context, op, name string, mode uint32, mk maker, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.fs.mu.Lock()
	e, err := n.create(ctx, name, mode, mk)
	n.fs.mu.Unlock()
	if err != nil {
		return nil, n.fs.errno(ctx, op, err)
	}
	return n.newChild(ctx, e, &out.Attr), 0
}

// Link links target (copied up first) under name; owner and mode are the
// target's.
func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	tn, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	n.fs.mu.Lock()
	e, err := n.link(ctx, tn, name)
	n.fs.mu.Unlock()
	if err != nil {
		return nil, n.fs.errno(ctx, "link", err)
	}
	fill(e, &out.Attr)
	// A name of a hard-linked lower file copied up for the link is a new
	// node (see ident.go); otherwise the target's node is the one.
	if id := n.fs.upperIdent(e.upper); id != tn.StableAttr() {
		return n.NewInode(ctx, &node{fs: n.fs}, id), 0
	}
	return tn.EmbeddedInode(), 0
}

func (n *node) link(ctx context.Context, tn *node, name string) (*entry, error) {
	e, err := n.fs.resolve(ctx, n, name)
	if err != nil {
		return nil, err
	}
	if e.exists() {
		return nil, fmt.Errorf("link %s: %w", e.path, syscall.EEXIST)
	}
	if _, err := n.fs.copyUpNode(ctx, n, true); err != nil {
		return nil, err
	}
	d, err := n.upperDir()
	if err != nil {
		return nil, fmt.Errorf("link %s: %w", e.path, err)
	}
	defer d.release()
	dirfd, target := d.fd, name
	if e.whiteout {
		dirfd, target = n.fs.workFd, n.fs.tmpName()
	}
	if done, err := n.linkTmpfile(tn, dirfd, target); err != nil {
		return nil, err
	} else if !done {
		te, err := n.fs.copyUpNode(ctx, tn, true)
		if err != nil {
			return nil, err
		}
		ta, err := te.at(n.fs)
		if err != nil {
			return nil, fmt.Errorf("link %s: %w", e.path, err)
		}
		err = unix.Linkat(ta.dir.fd, ta.name, dirfd, target, 0)
		ta.release()
		if err != nil {
			return nil, fmt.Errorf("link %s: %w", e.path, err)
		}
	}
	if e.whiteout {
		tmp := target
		if err := n.fs.replaceWhiteout(tmp, d.fd, name); err != nil {
			unix.Unlinkat(n.fs.workFd, tmp, 0)
			return nil, err
		}
	}
	if e.upper, err = statAt(d.fd, name); err != nil {
		return nil, err
	}
	e.lower = nil
	return e, nil
}
