package daemon

import (
	"github.com/gonydus/nydus/daemon/rafsfs"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// newRaw returns the raw filesystem serving rootNode: go-fuse's node
// bridge, wrapped to count requests by opcode and, when the root is a
// RAFS image (immutable: no overlay, no pseudo root whose mounts come
// and go), to let the kernel skip OPENDIR/RELEASEDIR and cache every
// directory. Called with d.mu held.
func (d *Daemon) newRaw(rootNode fs.InodeEmbedder, opts *fs.Options) fuse.RawFileSystem {
	var ro []rafsfs.RawOption
	if d.direct != nil && d.direct.Overlay == nil {
		ro = append(ro, rafsfs.Immutable())
	}
	d.raw = rafsfs.NewRawFS(fs.NewNodeFS(rootNode, opts), ro...)
	return d.raw
}

// FUSERequests reports the FUSE requests the session answered, by opcode
// (FORGET per inode forgotten), and whether zero-message opendir is in
// use; ok is false before Start.
func (d *Daemon) FUSERequests() (counts map[string]uint64, noOpendir, ok bool) {
	d.mu.Lock()
	raw := d.raw
	d.mu.Unlock()
	if raw == nil {
		return nil, false, false
	}
	return raw.Requests().Counts(), raw.NoOpendir(), true
}
