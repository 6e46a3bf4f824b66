package daemon

import (
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gonydus/nydus/daemon/rafsfs"
)

// newRaw returns the raw filesystem serving rootNode, wrapped to count
// requests by opcode. A RAFS image at the root is served by FS.RawRoot,
// images under a pseudo root by rafsfs.PseudoRoot: both keep no state per
// inode and use zero-message opendir (the kernel skips OPENDIR/RELEASEDIR
// and caches every directory; the pseudo root invalidates its own listing
// when images come and go). An overlay at the root is served by go-fuse's
// node bridge over rootNode. Called with d.mu held.
func (d *Daemon) newRaw(rootNode fs.InodeEmbedder, opts *fs.Options) fuse.RawFileSystem {
	if d.direct != nil && d.direct.Overlay == nil {
		d.raw = rafsfs.NewRawFS(d.direct.FS.RawRoot(), rafsfs.Immutable())
	} else if d.pseudo != nil {
		d.raw = rafsfs.NewRawFS(d.pseudo, rafsfs.Immutable())
	} else if d.nodes != nil {
		d.handover = newHandoverFS(fs.NewNodeFS(rootNode, opts), d.ovGen, d.nodes, d.log)
		d.raw = rafsfs.NewRawFS(d.handover)
	} else {
		d.raw = rafsfs.NewRawFS(fs.NewNodeFS(rootNode, opts))
	}
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
