package rafsfs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
)

var (
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.FileReaddirenter   = (*dirHandle)(nil)
	_ fs.FileSeekdirer      = (*dirHandle)(nil)
	_ fs.FileLookuper       = (*dirHandle)(nil)
)

// OpendirHandle opens a directory whose listing the kernel may keep: the
// image never changes, so FOPEN_CACHE_DIR|FOPEN_KEEP_CACHE lets it serve
// later readdirs of the directory from its cache.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{n: n}, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

// dirHandle lists a directory from the image. Offsets are entry indexes
// plus one ("." and ".." are not listed, as the kernel does not need
// them), so a seek costs nothing and a READDIRPLUS answers the attributes
// of each entry from its nid without a name search.
type dirHandle struct {
	n      *node
	ents   []rafs.DirEntry
	loaded bool
	pos    int
	last   rafs.DirEntry // the entry Readdirent returned last
}

func (d *dirHandle) load() syscall.Errno {
	if d.loaded {
		return 0
	}
	ents, err := d.n.fs.img.ReadDir(d.n.nid)
	if err != nil {
		return errno(err)
	}
	d.ents, d.loaded = ents, true
	return 0
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if e := d.load(); e != 0 {
		return nil, e
	}
	if d.pos >= len(d.ents) {
		return nil, 0
	}
	e := d.ents[d.pos]
	d.pos++
	d.last = e
	return &fuse.DirEntry{Name: e.Name, Ino: d.n.fs.inoBase | e.Nid, Mode: layout.ModeOfFileType(e.FileType), Off: uint64(d.pos)}, 0
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if e := d.load(); e != 0 {
		return e
	}
	d.pos = int(min(off, uint64(len(d.ents))))
	return 0
}

// Lookup answers the READDIRPLUS part of the entry Readdirent returned
// last: go-fuse calls it with that entry's name.
func (d *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if name != d.last.Name {
		return d.n.Lookup(ctx, name, out)
	}
	return d.n.child(ctx, name, d.last.Nid, out)
}
