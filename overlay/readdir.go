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

// readUpper lists the upper directory p (without . and ..).
func (f *FS) readUpper(p string) ([]fuse.DirEntry, error) {
	fd, err := unix.Openat(f.upperFd, rel(p), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open upper dir %s: %w", p, err)
	}
	ds, errno := gofs.NewLoopbackDirStreamFd(fd)
	if errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("read upper dir %s: %w", p, errno)
	}
	defer ds.Close()
	var out []fuse.DirEntry
	for ds.HasNext() {
		e, errno := ds.Next()
		if errno != 0 {
			return nil, fmt.Errorf("read upper dir %s: %w", p, errno)
		}
		if e.Name == "." || e.Name == ".." {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// upperNames lists the names in the upper directory p.
func (f *FS) upperNames(p string) ([]string, error) {
	ents, err := f.readUpper(p)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name
	}
	return names, nil
}

// readMerged lists the merged directory e: upper names first, then lower
// names neither in the upper directory nor whited out.
func (f *FS) readMerged(ctx context.Context, e *entry) ([]fuse.DirEntry, error) {
	var out []fuse.DirEntry
	seen := map[string]bool{}
	if e.upper != nil {
		ups, err := f.readUpper(e.path)
		if err != nil {
			return nil, err
		}
		for _, u := range ups {
			seen[u.Name] = true
			if u.Mode&unix.S_IFMT == unix.S_IFCHR {
				st, err := f.statUpper(join(e.path, u.Name))
				if err == nil && isWhiteout(st) {
					continue
				}
			}
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
		if fd, err := unix.Openat(n.fs.upperFd, rel(e.path), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			d.fd = fd
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
	p, err := d.n.path()
	if err != nil {
		return d.n.fs.errno(ctx, "fsyncdir", err)
	}
	fd, err := unix.Openat(d.n.fs.upperFd, rel(p), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0 // nothing of it is in the upper directory
	}
	defer unix.Close(fd)
	return d.n.fs.errno(ctx, "fsyncdir", unix.Fsync(fd))
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if d.fd >= 0 {
		unix.Close(d.fd)
	}
}
