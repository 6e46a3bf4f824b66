package overlay

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// readUpper lists e's upper directory (without . and ..): its entries,
// and apart the names of the whiteouts in it.
func (f *FS) readUpper(e *entry) ([]fuse.DirEntry, []string, error) {
	a, err := e.at(f)
	if err != nil {
		return nil, nil, fmt.Errorf("open upper dir %s: %w", e.path, err)
	}
	defer a.release()
	fd, err := unix.Openat(a.dir.fd, a.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open upper dir %s: %w", e.path, err)
	}
	defer unix.Close(fd)
	ents, whiteouts, err := readUpperFd(fd)
	if err != nil {
		return nil, nil, fmt.Errorf("read upper dir %s: %w", e.path, err)
	}
	return ents, whiteouts, nil
}

// readUpperFd lists the open upper directory fd.
func readUpperFd(fd int) ([]fuse.DirEntry, []string, error) {
	sfd, err := unix.Dup(fd) // the stream closes its own
	if err != nil {
		return nil, nil, err
	}
	ds, errno := gofs.NewLoopbackDirStreamFd(sfd)
	if errno != 0 {
		unix.Close(sfd)
		return nil, nil, errno
	}
	defer ds.Close()
	var out []fuse.DirEntry
	var whiteouts []string
	for ds.HasNext() {
		e, errno := ds.Next()
		if errno != 0 {
			return nil, nil, errno
		}
		if e.Name == "." || e.Name == ".." {
			continue
		}
		if e.Mode&unix.S_IFMT == unix.S_IFCHR {
			if st, err := statAt(fd, e.Name); err == nil && isWhiteout(st) {
				whiteouts = append(whiteouts, e.Name)
				continue
			}
		}
		out = append(out, e)
	}
	return out, whiteouts, nil
}

// readMerged lists the merged directory e: upper names first, then lower
// names neither in the upper directory nor whited out.
func (f *FS) readMerged(ctx context.Context, e *entry) ([]fuse.DirEntry, error) {
	var out []fuse.DirEntry
	seen := map[string]bool{}
	if e.upper != nil {
		ups, whiteouts, err := f.readUpper(e)
		if err != nil {
			return nil, err
		}
		for _, w := range whiteouts {
			seen[w] = true
		}
		for _, u := range ups {
			seen[u.Name] = true
			u.Ino = f.direntIno(u.Ino)
			u.Off = 0
			out = append(out, u)
		}
	}
	if e.lower == nil {
		return out, nil
	}
	lows, err := e.lower.ReadDir(ctx)
	if err != nil {
		return nil, fmt.Errorf("read lower dir %s: %w", e.path, err)
	}
	for _, l := range lows {
		if seen[l.Name] {
			continue
		}
		if l.Mode&unix.S_IFMT == unix.S_IFCHR {
			if c, err := e.lower.Lookup(ctx, l.Name); err == nil {
				if st, err := c.Stat(ctx); err == nil && st.Rdev == 0 {
					continue
				}
			}
		}
		out = append(out, fuse.DirEntry{Name: l.Name, Mode: l.Mode, Ino: f.lowerDirentIno(l.Ino)})
	}
	return out, nil
}

// isEmpty reports whether the merged directory e has no entries.
func (f *FS) isEmpty(ctx context.Context, e *entry) (bool, error) {
	ents, err := f.readMerged(ctx, e)
	return len(ents) == 0, err
}

// dirHandle is an open directory: a snapshot of the merged listing taken
// at the first read and again at every rewind, served with offsets that
// are indexes into it (so seekdir/telldir are stable).
type dirHandle struct {
	n    *node
	fd   int // the upper directory when it was opened, or -1
	mu   sync.Mutex
	ents []fuse.DirEntry
	idx  int
	read bool
}

var (
	_ gofs.FileReaddirenter = (*dirHandle)(nil)
	_ gofs.FileSeekdirer    = (*dirHandle)(nil)
	_ gofs.FileFsyncdirer   = (*dirHandle)(nil)
	_ gofs.FileReleasedirer = (*dirHandle)(nil)
)

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	e, err := n.resolveSelf(ctx)
	if err != nil {
		return nil, 0, n.fs.errno(ctx, "opendir", err)
	}
	d := &dirHandle{n: n, fd: -1}
	if e.upper != nil {
		// Kept for fstat and fsync after the directory is renamed over or removed.
		if a, err := e.at(n.fs); err == nil {
			if fd, err := unix.Openat(a.dir.fd, a.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
				d.fd = fd
			}
			a.release()
		}
	}
	return d, 0, 0
}

// stat reports the directory's attributes once its name is gone.
func (d *dirHandle) stat(out *fuse.Attr) bool {
	if d.fd >= 0 {
		return fstatAttr(d.fd, out)
	}
	st, err := d.n.lowerStat()
	if err != nil {
		return false
	}
	fillLower(st, out)
	return true
}

func (d *dirHandle) load(ctx context.Context) syscall.Errno {
	e, err := d.n.resolveSelf(ctx)
	if err != nil {
		return d.n.fs.errno(ctx, "readdir", err)
	}
	ents, err := d.n.fs.readMerged(ctx, e)
	if err != nil {
		return d.n.fs.errno(ctx, "readdir", err)
	}
	dot := fuse.DirEntry{Name: ".", Mode: unix.S_IFDIR, Ino: d.n.StableAttr().Ino}
	dotdot := fuse.DirEntry{Name: "..", Mode: unix.S_IFDIR, Ino: 1}
	if _, p := d.n.Parent(); p != nil {
		dotdot.Ino = p.StableAttr().Ino
	}
	d.ents = append([]fuse.DirEntry{dot, dotdot}, ents...)
	for i := range d.ents {
		d.ents[i].Off = uint64(i + 1)
	}
	d.read = true
	return 0
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.read {
		if errno := d.load(ctx); errno != 0 {
			return nil, errno
		}
	}
	if d.idx >= len(d.ents) {
		return nil, 0
	}
	e := d.ents[d.idx]
	d.idx++
	return &e, 0
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off == 0 {
		d.idx = 0
		return d.load(ctx)
	}
	if !d.read {
		if errno := d.load(ctx); errno != 0 {
			return errno
		}
	}
	if off > uint64(len(d.ents)) {
		return syscall.EINVAL
	}
	d.idx = int(off)
	return 0
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if d.fd >= 0 {
		return d.n.fs.errno(ctx, "fsyncdir", unix.Fsync(d.fd))
	}
	r, err := d.n.upperDir()
	if err != nil {
		return 0 // nothing of it is in the upper directory
	}
	fd, err := unix.Openat(r.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	r.release()
	if err != nil {
		return d.n.fs.errno(ctx, "fsyncdir", err)
	}
	defer unix.Close(fd)
	return d.n.fs.errno(ctx, "fsyncdir", unix.Fsync(fd))
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if d.fd >= 0 {
		unix.Close(d.fd)
	}
}
