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
	_ gofs.NodeTmpfiler    = (*node)(nil)
	_ gofs.NodeOnForgetter = (*node)(nil)
)

// Tmpfile makes an unnamed file (O_TMPFILE) in the upper copy of n. The
// node keeps a descriptor of it, so that linkat can give it a name later.
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	n.fs.mu.Lock()
	fd, st, err := n.tmpfile(ctx, flags, mode)
	n.fs.mu.Unlock()
	if err != nil {
		return nil, nil, 0, n.fs.errno(ctx, "tmpfile", err)
	}
	keep, err := unix.Dup(fd)
	if err != nil {
		unix.Close(fd)
		return nil, nil, 0, n.fs.errno(ctx, "tmpfile", err)
	}
	child := &node{fs: n.fs, tmpfd: keep}
	fillUpper(st, &out.Attr)
	n.fs.born(st)
	ch := n.NewInode(ctx, child, n.fs.upperIdent(st))
	return ch, asNode(ch).newUpperFile(fd), 0, 0
}

func (n *node) tmpfile(ctx context.Context, flags, mode uint32) (int, *unix.Statx_t, error) {
	de, err := n.fs.copyUpNode(ctx, n, true)
	if err != nil {
		return -1, nil, err
	}
	d, err := n.upperDir()
	if err != nil {
		return -1, nil, fmt.Errorf("tmpfile in %s: %w", de.path, err)
	}
	fd, err := unix.Openat(d.fd, ".", openFlags(flags)&^unix.O_NOFOLLOW|unix.O_TMPFILE, mode&0o7777)
	d.release()
	if err != nil {
		return -1, nil, fmt.Errorf("tmpfile in %s: %w", de.path, err)
	}
	uid, gid, _ := owner(ctx, de.upper)
	if err := unix.Fchown(fd, uid, gid); err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("tmpfile: chown: %w", err)
	}
	if err := unix.Fchmod(fd, mode&0o7777); err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("tmpfile: chmod: %w", err)
	}
	var st unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &st); err != nil {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("tmpfile: stat: %w", err)
	}
	return fd, &st, nil
}

// linkTmpfile gives the unnamed file of tn the name dirfd/name.
func (n *node) linkTmpfile(tn *node, dirfd int, name string) (bool, error) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	if tn.tmpfd <= 0 {
		return false, nil
	}
	if _, parent := tn.Parent(); parent != nil {
		return false, nil // linked already: use its path
	}
	if err := unix.Linkat(tn.tmpfd, "", dirfd, name, unix.AT_EMPTY_PATH); err != nil {
		return true, fmt.Errorf("link tmpfile: %w", err)
	}
	return true, nil
}

// OnForget closes the descriptor of an unnamed file and the node's
// upper directory descriptor.
func (n *node) OnForget() {
	n.dropHeld()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.tmpfd > 0 {
		unix.Close(n.tmpfd)
		n.tmpfd = 0
	}
}
