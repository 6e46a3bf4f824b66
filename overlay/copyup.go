package overlay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// copyUpNode makes sure n, and every directory above it, exists in the
// upper tree, and returns n's path. The caller holds f.mu.
func (f *FS) copyUpNode(ctx context.Context, n *node, withData bool) (*entry, error) {
	e, err := n.resolveSelf(ctx)
	if err != nil {
		return nil, err
	}
	if e.upper != nil {
		return e, nil
	}
	_, parent := n.Parent()
	if pn := asNode(parent); pn != nil {
		if _, err := f.copyUpNode(ctx, pn, true); err != nil {
			return nil, err
		}
	}
	if err := f.copyUp(ctx, e, n.StableAttr(), withData); err != nil {
		return nil, err
	}
	n.markCopiedUp()
	if e.upper, err = f.statUpper(e); err != nil {
		return nil, err
	}
	return e, nil
}

// copyUp copies the lower object of e (whose parent is already in the
// upper tree) up: it is built in the work directory with the lower data,
// xattrs, owner, mode and times, then renamed into place; the parent's
// times are kept. withData false leaves a regular file empty (it is about
// to be truncated).
func (f *FS) copyUp(ctx context.Context, e *entry, id gofs.StableAttr, withData bool) (err error) {
	if e.lower == nil {
		return fmt.Errorf("copy up %s: no lower object: %w", e.path, unix.ENOENT)
	}
	if e.dir == nil {
		return fmt.Errorf("copy up the root: %w", unix.EINVAL)
	}
	// The parent's times are kept: it is stat'ed and touched as an entry
	// of its own parent.
	pe, err := e.dir.selfEntry()
	if err != nil {
		return err
	}
	pa, err := pe.at(f)
	if err != nil {
		return fmt.Errorf("copy up %s: %w", e.path, err)
	}
	defer pa.release()
	pst, err := statAt(pa.dir.fd, pa.name)
	if err != nil {
		return err
	}
	d, err := e.dir.upperDir()
	if err != nil {
		return fmt.Errorf("copy up %s: %w", e.path, err)
	}
	defer d.release()
	st := e.lst
	tmp := f.tmpName()
	defer func() {
		if err != nil {
			os.RemoveAll(f.workPath(tmp))
		}
	}()
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		err = unix.Mkdirat(f.workFd, tmp, 0o700)
	case unix.S_IFREG:
		err = f.copyData(ctx, e.lower, tmp, withData)
	case unix.S_IFLNK:
		var target string
		if target, err = e.lower.Readlink(ctx); err == nil {
			err = unix.Symlinkat(target, f.workFd, tmp)
		}
	default:
		err = unix.Mknodat(f.workFd, tmp, st.Mode&unix.S_IFMT|0o600, int(st.Rdev))
	}
	if err != nil {
		return fmt.Errorf("copy up %s: %w", e.path, err)
	}
	if err := f.copyMeta(ctx, e.lower, st, tmp); err != nil {
		return fmt.Errorf("copy up %s: %w", e.path, err)
	}
	if err := renameNoReplace(f.workFd, tmp, d.fd, e.name); err != nil {
		return fmt.Errorf("copy up %s: move into place: %w", e.path, err)
	}
	if err := setTimes(pa.dir.fd, pa.name, pst.Atime, pst.Mtime); err != nil {
		return fmt.Errorf("copy up %s: keep parent times: %w", e.path, err)
	}
	ust, err := statAt(d.fd, e.name)
	if err != nil {
		return nil
	}
	f.born(ust)
	// A name of a hard-linked lower file reports its upper number from
	// now on, as on the kernel; any other object keeps its number.
	if !linkedLower(st) {
		f.recordCopyUp(ust, id)
	}
	return nil
}

func (f *FS) copyData(ctx context.Context, l Lower, tmp string, withData bool) error {
	out, err := os.OpenFile(f.workPath(tmp), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if withData {
		err = copyLower(ctx, l, out)
	}
	return errors.Join(err, out.Close())
}

func copyLower(ctx context.Context, l Lower, out *os.File) error {
	in, err := l.Open(ctx)
	if err != nil {
		return err
	}
	defer in.Close()
	if f, ok := in.(*os.File); ok {
		_, err = io.Copy(out, f) // copy_file_range when it can
		return err
	}
	buf := make([]byte, 1<<20)
	var off int64
	for {
		k, err := in.ReadAt(buf, off)
		if k > 0 {
			if _, werr := out.Write(buf[:k]); werr != nil {
				return werr
			}
			off += int64(k)
		}
		if errors.Is(err, io.EOF) || (err == nil && k == 0) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// copyMeta gives the work entry tmp the lower object's xattrs (but this
// overlay's own), owner, mode and times, in the kernel's order.
func (f *FS) copyMeta(ctx context.Context, l Lower, st Stat, tmp string) error {
	xs, err := l.Xattrs(ctx)
	if err != nil {
		return err
	}
	for _, x := range xs {
		if strings.HasPrefix(x.Name, f.xattrNS) {
			continue
		}
		if err := unix.Lsetxattr(f.workPath(tmp), x.Name, x.Value, 0); err != nil {
			return fmt.Errorf("xattr %s: %w", x.Name, err)
		}
	}
	if err := unix.Fchownat(f.workFd, tmp, int(st.UID), int(st.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Fchmodat(f.workFd, tmp, st.Mode&0o7777, 0); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	at := unix.NsecToTimespec(st.Atime.UnixNano())
	mt := unix.NsecToTimespec(st.Mtime.UnixNano())
	return setTimesTs(f.workFd, tmp, at, mt)
}

func setTimes(dirfd int, p string, a, m unix.StatxTimestamp) error {
	return setTimesTs(dirfd, p, unix.Timespec{Sec: a.Sec, Nsec: int64(a.Nsec)}, unix.Timespec{Sec: m.Sec, Nsec: int64(m.Nsec)})
}

func setTimesTs(dirfd int, p string, a, m unix.Timespec) error {
	if err := unix.UtimesNanoAt(dirfd, p, []unix.Timespec{a, m}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("utimes: %w", err)
	}
	return nil
}
