package overlay

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

var _ gofs.NodeRenamer = (*node)(nil)

func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	n.fs.mu.Lock()
	err := n.rename(ctx, name, np, newName, flags)
	n.fs.mu.Unlock()
	return n.fs.errno(ctx, "rename", err)
}

// rename follows the kernel's overlayfs without redirect_dir: directories
// that have a lower part cannot move (EXDEV), everything else is copied up
// and renamed in the upper tree, leaving a whiteout where a lower object
// showed through; a directory moved into a merged directory is made opaque.
// The caller holds f.mu.
func (n *node) rename(ctx context.Context, name string, np *node, newName string, flags uint32) error {
	if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 {
		return fmt.Errorf("rename flags %#x: %w", flags, syscall.EINVAL)
	}
	exchange := flags&unix.RENAME_EXCHANGE != 0
	src, err := n.fs.resolve(ctx, n, name)
	if err != nil {
		return err
	}
	dst, err := n.fs.resolve(ctx, np, newName)
	if err != nil {
		return err
	}
	if err := checkRename(src, dst, flags); err != nil {
		return err
	}
	if src.path == dst.path || sameUpper(src, dst) {
		return nil
	}
	srcDir := src.isDir()
	if srcDir && src.lower != nil || exchange && dst.isDir() && dst.lower != nil {
		return fmt.Errorf("rename %s: directory has a lower part: %w", src.path, syscall.EXDEV)
	}
	if !exchange && dst.isDir() {
		empty, err := n.fs.isEmpty(ctx, dst)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("rename over %s: %w", dst.path, syscall.ENOTEMPTY)
		}
	}
	if _, err := n.fs.copyUpNode(ctx, n, true); err != nil {
		return err
	}
	if _, err := n.fs.copyUpNode(ctx, np, true); err != nil {
		return err
	}
	if err := n.fs.copyUpEntry(ctx, n, name, src); err != nil {
		return err
	}
	if exchange {
		if err := n.fs.copyUpEntry(ctx, np, newName, dst); err != nil {
			return err
		}
	} else if dst.isDir() && dst.upper != nil {
		if err := dst.atDo(n.fs, n.fs.clearWhiteouts); err != nil {
			return err
		}
	}
	if srcDir && np.getLower() != nil {
		if err := n.fs.makeOpaque(src); err != nil {
			return err
		}
	}
	if exchange && dst.isDir() && n.getLower() != nil {
		if err := n.fs.makeOpaque(dst); err != nil {
			return err
		}
	}
	if err := n.fs.renameUpper(src, dst, srcDir, exchange); err != nil {
		return err
	}
	if c := n.child(name); c != nil {
		c.setLower(nil)
	}
	if c := np.child(newName); c != nil && exchange {
		c.setLower(nil)
	}
	return nil
}

// checkRename makes the checks the VFS makes before a file system sees a
// rename, in the merged view.
func checkRename(src, dst *entry, flags uint32) error {
	if !src.exists() {
		return fmt.Errorf("rename %s: %w", src.path, syscall.ENOENT)
	}
	if flags&unix.RENAME_EXCHANGE != 0 {
		if !dst.exists() {
			return fmt.Errorf("rename %s: %w", dst.path, syscall.ENOENT)
		}
		return nil
	}
	if !dst.exists() {
		return nil
	}
	if flags&unix.RENAME_NOREPLACE != 0 {
		return fmt.Errorf("rename to %s: %w", dst.path, syscall.EEXIST)
	}
	switch {
	case src.isDir() && !dst.isDir():
		return fmt.Errorf("rename to %s: %w", dst.path, syscall.ENOTDIR)
	case !src.isDir() && dst.isDir():
		return fmt.Errorf("rename to %s: %w", dst.path, syscall.EISDIR)
	}
	return nil
}

func sameUpper(a, b *entry) bool {
	return a.upper != nil && b.upper != nil && a.upper.Ino == b.upper.Ino &&
		a.upper.Dev_major == b.upper.Dev_major && a.upper.Dev_minor == b.upper.Dev_minor
}

// copyUpEntry copies up e, the entry name of dir (already in the upper tree).
func (f *FS) copyUpEntry(ctx context.Context, dir *node, name string, e *entry) error {
	if e.upper != nil {
		return nil
	}
	c := dir.child(name)
	id := f.lowerIdent(e.path, e.lst)
	if c != nil {
		id = c.StableAttr()
	}
	if err := f.copyUp(ctx, e, id, true); err != nil {
		return err
	}
	if c != nil {
		c.markCopiedUp()
	}
	st, err := f.statUpper(e)
	if err != nil {
		return err
	}
	e.upper = st
	return nil
}

// renameUpper renames src to dst in the upper tree, leaving a whiteout at
// src when a lower object is under that name, as the kernel does.
func (f *FS) renameUpper(src, dst *entry, srcDir, exchange bool) error {
	sa, err := src.at(f)
	if err != nil {
		return fmt.Errorf("rename %s: %w", src.path, err)
	}
	defer sa.release()
	da, err := dst.at(f)
	if err != nil {
		return fmt.Errorf("rename to %s: %w", dst.path, err)
	}
	defer da.release()
	var flags uint
	cleanup, whiteout := false, false
	switch {
	case exchange:
		flags = unix.RENAME_EXCHANGE
	case src.lowerPos && dst.whiteout:
		flags = unix.RENAME_EXCHANGE // the whiteout moves to the source name
	case src.lowerPos:
		flags, whiteout = unix.RENAME_WHITEOUT, true
	case srcDir && dst.whiteout:
		flags, cleanup = unix.RENAME_EXCHANGE, true
	}
	if flags == unix.RENAME_EXCHANGE {
		err = f.exchange(sa.dir.fd, sa.name, da.dir.fd, da.name)
	} else {
		err = unix.Renameat2(sa.dir.fd, sa.name, da.dir.fd, da.name, flags)
	}
	if whiteout && errors.Is(err, unix.EINVAL) {
		// The upper file system cannot leave a whiteout itself.
		if err = unix.Renameat(sa.dir.fd, sa.name, da.dir.fd, da.name); err == nil {
			err = f.whiteout(sa.dir.fd, sa.name, false, false)
		}
	}
	if err != nil {
		return fmt.Errorf("rename %s to %s: %w", src.path, dst.path, err)
	}
	if cleanup {
		if err := unix.Unlinkat(sa.dir.fd, sa.name, 0); err != nil {
			return fmt.Errorf("rename %s: remove replaced whiteout: %w", src.path, err)
		}
	}
	return nil
}

// makeOpaque marks e's upper directory opaque unless it is already.
func (f *FS) makeOpaque(e *entry) error {
	opaque, err := f.opaqueOf(e)
	if err != nil || opaque {
		return err
	}
	return e.atDo(f, f.setOpaque)
}
