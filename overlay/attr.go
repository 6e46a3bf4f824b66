package overlay

import (
	"context"
	"fmt"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

var (
	_ gofs.NodeLookuper   = (*node)(nil)
	_ gofs.NodeGetattrer  = (*node)(nil)
	_ gofs.NodeSetattrer  = (*node)(nil)
	_ gofs.NodeStatfser   = (*node)(nil)
	_ gofs.NodeReadlinker = (*node)(nil)
)

func fillUpper(st *unix.Statx_t, out *fuse.Attr) {
	out.Ino = st.Ino
	out.Size = st.Size
	out.Blocks = st.Blocks
	out.Mode = uint32(st.Mode)
	out.Nlink = st.Nlink
	out.Uid, out.Gid = st.Uid, st.Gid
	out.Rdev = uint32(unix.Mkdev(st.Rdev_major, st.Rdev_minor))
	out.Blksize = st.Blksize
	out.Atime, out.Atimensec = uint64(st.Atime.Sec), st.Atime.Nsec
	out.Mtime, out.Mtimensec = uint64(st.Mtime.Sec), st.Mtime.Nsec
	out.Ctime, out.Ctimensec = uint64(st.Ctime.Sec), st.Ctime.Nsec
}

func fillLower(st Stat, out *fuse.Attr) {
	out.Ino = st.Ino
	out.Size = uint64(st.Size)
	out.Blocks = (uint64(st.Size) + 511) / 512
	out.Mode = st.Mode
	out.Nlink = st.Nlink
	out.Uid, out.Gid = st.UID, st.GID
	out.Rdev = uint32(st.Rdev)
	out.Blksize = 4096
	setTime := func(t time.Time, s *uint64, ns *uint32) { *s, *ns = uint64(t.Unix()), uint32(t.Nanosecond()) }
	setTime(st.Atime, &out.Atime, &out.Atimensec)
	setTime(st.Mtime, &out.Mtime, &out.Mtimensec)
	setTime(st.Ctime, &out.Ctime, &out.Ctimensec)
}

// fill reports e's attributes: the upper object's if there is one, else
// the lower one's. A merged directory reports one link, as the kernel's
// overlay does.
func fill(e *entry, out *fuse.Attr) {
	if e.upper != nil {
		fillUpper(e.upper, out)
		if e.merged() {
			out.Nlink = 1
		}
		return
	}
	fillLower(e.lst, out)
}

func (f *FS) ident(e *entry) gofs.StableAttr {
	if e.upper != nil {
		return f.upperIdent(e.upper)
	}
	return f.lowerIdent(e.path, e.lst)
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	e, err := n.fs.resolve(ctx, n, name)
	if err != nil {
		return nil, n.fs.errno(ctx, "lookup", err)
	}
	if !e.exists() {
		return nil, syscall.ENOENT
	}
	if e.upper == nil && linkedLower(e.lst) {
		// Copying this name up gives it a new node (its upper number):
		// the kernel must look it up again rather than keep this one.
		out.SetEntryTimeout(linkedEntryTimeout)
	}
	return n.newChild(ctx, e, &out.Attr), 0
}

// linkedEntryTimeout is how long the kernel may keep the name of a
// hard-linked lower file (and the attributes of a name copied up since):
// the shortest it takes (zero would mean the default to go-fuse).
const linkedEntryTimeout = time.Nanosecond

// newChild returns the inode for e, filling out.
func (n *node) newChild(ctx context.Context, e *entry, out *fuse.Attr) *gofs.Inode {
	fill(e, out)
	child := &node{fs: n.fs, lower: e.lower}
	return n.NewInode(ctx, child, n.fs.ident(e))
}

func (n *node) Getattr(ctx context.Context, fh gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if n.staleLinked() {
		if fh == nil {
			return syscall.ESTALE // the kernel looks the name up again
		}
		// An open file's attributes, not to be kept for the name.
		defer out.SetTimeout(linkedEntryTimeout)
	}
	if uf, ok := fh.(*upperFile); ok {
		return uf.Getattr(ctx, out)
	}
	e, err := n.resolveSelf(ctx)
	if err != nil {
		// An open file or directory whose name is gone still has attributes.
		if h, ok := fh.(interface{ stat(*fuse.Attr) bool }); ok && h.stat(&out.Attr) {
			return 0
		}
		return n.fs.errno(ctx, "getattr", err)
	}
	fill(e, &out.Attr)
	return 0
}

// fstatAttr fills out from the open descriptor fd.
func fstatAttr(fd int, out *fuse.Attr) bool {
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS, &st); err != nil {
		return false
	}
	fillUpper(&st, out)
	return true
}

func (n *node) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if uf, ok := fh.(*upperFile); ok {
		return n.setattrFile(ctx, uf, in, out)
	}
	if uf := n.openedFor(in); uf != nil {
		// EBADF: it was closed meanwhile; the path still works.
		if errno := n.setattrFile(ctx, uf, in, out); errno != syscall.EBADF {
			return errno
		}
	}
	e, err := n.setattrTarget(ctx, in)
	if err != nil {
		return n.fs.errno(ctx, "setattr", err)
	}
	if err := n.fs.setattr(e, in); err != nil {
		return n.fs.errno(ctx, "setattr", err)
	}
	// The object is in the upper tree now: its stat is the reply, as
	// resolveSelf would make it.
	st, err := n.fs.statUpper(e)
	if err != nil {
		return n.fs.errno(ctx, "setattr", err)
	}
	re := &entry{path: e.path, upper: st}
	if uint32(st.Mode)&unix.S_IFMT == unix.S_IFDIR {
		re.lower = n.getLower()
	}
	fill(re, &out.Attr)
	n.setattrReply(out)
	return 0
}

// setattrFile applies in through the open upper file uf.
func (n *node) setattrFile(ctx context.Context, uf *upperFile, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	// The file's Setattr fills out from its descriptor.
	if errno := uf.Setattr(ctx, in, out); errno != 0 {
		return errno
	}
	if wantsKill(in) && !chowns(in) {
		if fd, ok := uf.PassthroughFd(); ok {
			if err := killFd(fd); err != nil {
				return n.fs.errno(ctx, "setattr", err)
			}
		}
		if errno := uf.Getattr(ctx, out); errno != 0 {
			return errno
		}
	}
	n.setattrReply(out)
	return 0
}

// setattrTarget returns where SETATTR applies: a node with no lower
// object lives in the upper tree under its path (a chmod, chown or utimens
// of a file just made, as tar does, needs nothing else); any other is
// copied up first (its data only if it is not truncated to 0).
func (n *node) setattrTarget(ctx context.Context, in *fuse.SetAttrIn) (*entry, error) {
	if n.getLower() == nil {
		e, err := n.selfEntry()
		if err != nil {
			return nil, err
		}
		if e.dir != nil {
			return e, nil
		}
	}
	size, hasSize := in.GetSize()
	n.fs.mu.Lock()
	defer n.fs.mu.Unlock()
	return n.fs.copyUpNode(ctx, n, !hasSize || size > 0)
}

// setattrReply completes the reply to SETATTR with the node's inode number
// and the attribute timeout go-fuse leaves unset there (without it the
// kernel asks again at once).
func (n *node) setattrReply(out *fuse.AttrOut) {
	out.Ino = n.StableAttr().Ino
	out.SetTimeout(attrTimeout)
}

// setattr applies in to e's upper object: owner first, then mode (so
// set-id bits given with an owner change stay), size, times.
func (f *FS) setattr(e *entry, in *fuse.SetAttrIn) error {
	a, err := e.at(f)
	if err != nil {
		return fmt.Errorf("setattr %s: %w", e.path, err)
	}
	defer a.release()
	dirfd, name, p := a.dir.fd, a.name, e.path
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		if err := unix.Fchownat(dirfd, name, u, g, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
	}
	if mode, ok := in.GetMode(); ok {
		if err := chmodAt(dirfd, name, mode&0o7777); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	if size, ok := in.GetSize(); ok {
		if err := truncateAt(dirfd, name, int64(size)); err != nil {
			return fmt.Errorf("truncate %s: %w", p, err)
		}
	}
	if in.Valid&(fuse.FATTR_ATIME|fuse.FATTR_MTIME|fuse.FATTR_ATIME_NOW|fuse.FATTR_MTIME_NOW) != 0 {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		switch {
		case in.Valid&fuse.FATTR_ATIME_NOW != 0:
			ts[0].Nsec = unix.UTIME_NOW
		case in.Valid&fuse.FATTR_ATIME != 0:
			ts[0] = unix.Timespec{Sec: int64(in.Atime), Nsec: int64(in.Atimensec)}
		}
		switch {
		case in.Valid&fuse.FATTR_MTIME_NOW != 0:
			ts[1].Nsec = unix.UTIME_NOW
		case in.Valid&fuse.FATTR_MTIME != 0:
			ts[1] = unix.Timespec{Sec: int64(in.Mtime), Nsec: int64(in.Mtimensec)}
		}
		if err := unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("utimes %s: %w", p, err)
		}
	}
	if wantsKill(in) && !chowns(in) {
		if err := killAt(dirfd, name); err != nil {
			return err
		}
	}
	if in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) == 0 {
		// A SETATTR that sets nothing is a chown(-1, -1) (or a write's
		// request to drop set-ID bits): it changes ctime on the kernel's
		// overlay, whose upper file system gets the chown.
		if err := unix.Fchownat(dirfd, name, -1, -1, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
	}
	return nil
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	e, err := n.resolveSelf(ctx)
	if err != nil {
		return nil, n.fs.errno(ctx, "readlink", err)
	}
	if e.upper == nil {
		t, err := e.lower.Readlink(ctx)
		if err != nil {
			return nil, n.fs.errno(ctx, "readlink", err)
		}
		return []byte(t), 0
	}
	a, err := e.at(n.fs)
	if err != nil {
		return nil, n.fs.errno(ctx, "readlink", err)
	}
	defer a.release()
	buf := make([]byte, unix.PathMax)
	k, err := unix.Readlinkat(a.dir.fd, a.name, buf)
	if err != nil {
		return nil, n.fs.errno(ctx, "readlink", err)
	}
	return buf[:k], 0
}

// Statfs reports the upper file system, as the kernel's overlay does.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	var st unix.Statfs_t
	if err := unix.Fstatfs(n.fs.upperFd, &st); err != nil {
		return n.fs.errno(ctx, "statfs", err)
	}
	out.Blocks, out.Bfree, out.Bavail = st.Blocks, st.Bfree, st.Bavail
	out.Files, out.Ffree = st.Files, st.Ffree
	out.Bsize, out.Frsize = uint32(st.Bsize), uint32(st.Frsize)
	out.NameLen = uint32(st.Namelen)
	return 0
}
