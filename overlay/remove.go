package overlay

import (
	"context"
	"fmt"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

var (
	_ gofs.NodeUnlinker = (*node)(nil)
	_ gofs.NodeRmdirer  = (*node)(nil)
)

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	n.fs.mu.Lock()
	err := n.remove(ctx, name, false)
	n.fs.mu.Unlock()
	return n.fs.errno(ctx, "unlink", err)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	n.fs.mu.Lock()
	err := n.remove(ctx, name, true)
	n.fs.mu.Unlock()
	return n.fs.errno(ctx, "rmdir", err)
}

// remove deletes name from n. A name with nothing below it in the lower
// tree is removed from the upper directory; otherwise a whiteout takes its
// place (exchanged with the upper object, if any). The caller holds f.mu.
func (n *node) remove(ctx context.Context, name string, dir bool) error {
	e, err := n.fs.resolve(ctx, n, name)
	if err != nil {
		return err
	}
	if !e.exists() {
		return fmt.Errorf("remove %s: %w", e.path, syscall.ENOENT)
	}
	if dir != e.isDir() {
		if dir {
			return fmt.Errorf("rmdir %s: %w", e.path, syscall.ENOTDIR)
		}
		return fmt.Errorf("unlink %s: %w", e.path, syscall.EISDIR)
	}
	if dir {
		empty, err := n.fs.isEmpty(ctx, e)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("rmdir %s: %w", e.path, syscall.ENOTEMPTY)
		}
		if e.upper != nil {
			if err := e.atDo(n.fs, n.fs.clearWhiteouts); err != nil {
				return err
			}
		}
	}
	if e.upper == nil { // an upper object's directory is in the upper tree
		if _, err := n.fs.copyUpNode(ctx, n, true); err != nil {
			return err
		}
	}
	d, err := n.upperDir()
	if err != nil {
		return fmt.Errorf("remove %s: %w", e.path, err)
	}
	defer d.release()
	if !e.lowerPos {
		flag := 0
		if dir {
			flag = unix.AT_REMOVEDIR
		}
		if err := unix.Unlinkat(d.fd, name, flag); err != nil {
			return fmt.Errorf("remove %s: %w", e.path, err)
		}
		return nil
	}
	return n.fs.whiteout(d.fd, name, e.upper != nil, dir)
}
