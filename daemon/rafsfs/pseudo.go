package rafsfs

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// PseudoRoot serves a directory of images (nydusd's shared mode: one FUSE
// mount, one sub-directory per image) with node IDs derived from nids, as
// RawRoot does for one image: an image's node IDs carry its index (the top
// byte of its inode numbers, WithInodeBase) above nid+2, and requests are
// routed by that byte. Nothing is kept per inode the kernel looks up.
//
// The directory itself (node ID FUSE_ROOT_ID, inode 1) changes as images
// come and go: its missing names are not cached, and Add and Remove tell
// the kernel to drop its entry, attributes and cached listing.
type PseudoRoot struct {
	fuse.RawFileSystem // ENOSYS for what a read-only directory does not do

	mu     sync.RWMutex
	server *fuse.Server
	byIdx  [256]*rawRoot
	names  map[string]uint8
	mtime  time.Time
}

// pseudoAttrTimeout is how long the kernel keeps the pseudo root's
// attributes: as long as an image's (Add and Remove invalidate them), so
// that a stat of the mountpoint is answered by the kernel while no daemon
// serves the session (failover).
const pseudoAttrTimeout = cacheTimeout

// NewPseudoRoot returns an empty pseudo root.
func NewPseudoRoot() *PseudoRoot {
	return &PseudoRoot{RawFileSystem: fuse.NewDefaultRawFileSystem(), names: map[string]uint8{}, mtime: time.Now()}
}

func (p *PseudoRoot) String() string { return "rafs-pseudo" }

// Init keeps the server for notifications and cache stores.
func (p *PseudoRoot) Init(s *fuse.Server) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.server = s
	for _, r := range p.byIdx {
		if r != nil {
			r.server = s
		}
	}
}

// Add serves f as the directory name. f's inode base (WithInodeBase) gives
// its index, which no other image of the pseudo root may have.
func (p *PseudoRoot) Add(name string, f *FS) error {
	idx := f.inoBase >> 56
	if idx == 0 || f.inoBase&nidMask != 0 {
		return fmt.Errorf("rafsfs: pseudo root: inode base %#x is not an index in the top byte", f.inoBase)
	}
	if name == "" || name == "." || name == ".." || slices.Contains([]byte(name), '/') {
		return fmt.Errorf("rafsfs: pseudo root: bad name %q", name)
	}
	p.mu.Lock()
	if _, ok := p.names[name]; ok {
		p.mu.Unlock()
		return fmt.Errorf("rafsfs: pseudo root: %q already served", name)
	}
	if p.byIdx[idx] != nil {
		p.mu.Unlock()
		return fmt.Errorf("rafsfs: pseudo root: index %d already served", idx)
	}
	r := f.rawServer(idx << 56)
	r.server = p.server
	p.byIdx[idx] = r
	p.names[name] = uint8(idx)
	p.mtime = time.Now()
	srv := p.server
	p.mu.Unlock()
	p.changed(srv, name)
	return nil
}

// Remove stops serving name. Requests for its inodes the kernel still
// holds fail with EIO.
func (p *PseudoRoot) Remove(name string) {
	p.mu.Lock()
	idx, ok := p.names[name]
	if ok {
		delete(p.names, name)
		p.byIdx[idx] = nil
		p.mtime = time.Now()
	}
	srv := p.server
	p.mu.Unlock()
	if ok {
		p.changed(srv, name)
	}
}

// changed tells the kernel that name and the root's listing changed. It
// is called without p.mu: the kernel may wait for a request in the root
// to be answered before it drops the entry.
func (p *PseudoRoot) changed(srv *fuse.Server, name string) {
	if srv == nil {
		return
	}
	// ENOENT: the kernel does not hold the entry or the root's pages.
	srv.EntryNotify(fuse.FUSE_ROOT_ID, name)
	srv.InodeNotify(fuse.FUSE_ROOT_ID, 0, 0)
}

// route returns the server of node nodeID's image, nil once removed.
func (p *PseudoRoot) route(nodeID uint64) *rawRoot {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.byIdx[nodeID>>56]
}

func (p *PseudoRoot) rootAttr(out *fuse.Attr) {
	p.mu.RLock()
	n, mt := len(p.names), p.mtime
	p.mu.RUnlock()
	*out = fuse.Attr{Ino: fuse.FUSE_ROOT_ID, Mode: fuse.S_IFDIR | 0o755, Nlink: uint32(2 + n), Blksize: 4096}
	out.SetTimes(&mt, &mt, &mt)
}

func (p *PseudoRoot) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if h.NodeId != fuse.FUSE_ROOT_ID {
		if r := p.route(h.NodeId); r != nil {
			return r.Lookup(cancel, h, name, out)
		}
		return fuse.EIO
	}
	p.mu.RLock()
	idx, ok := p.names[name]
	r := p.byIdx[idx]
	p.mu.RUnlock()
	if !ok {
		// Not cached: the image may be mounted later.
		return fuse.ENOENT
	}
	return r.entry(r.fs.img.Root(), out)
}

func (p *PseudoRoot) Forget(nodeID, nlookup uint64) {}

func (p *PseudoRoot) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if in.NodeId == fuse.FUSE_ROOT_ID {
		p.rootAttr(&out.Attr)
		out.SetTimeout(pseudoAttrTimeout)
		return fuse.OK
	}
	if r := p.route(in.NodeId); r != nil {
		return r.GetAttr(cancel, in, out)
	}
	return fuse.EIO
}

func (p *PseudoRoot) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	if r := p.route(h.NodeId); r != nil {
		return r.Readlink(cancel, h)
	}
	return nil, fuse.EINVAL
}

func (p *PseudoRoot) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	if r := p.route(h.NodeId); r != nil {
		return r.GetXAttr(cancel, h, attr, dest)
	}
	return 0, fuse.ENOATTR
}

func (p *PseudoRoot) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	if r := p.route(h.NodeId); r != nil {
		return r.ListXAttr(cancel, h, dest)
	}
	return 0, fuse.OK
}

func (p *PseudoRoot) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	if r := p.route(h.NodeId); r != nil {
		return r.StatFs(cancel, h, out)
	}
	*out = fuse.StatfsOut{Bsize: 512, Frsize: 512, NameLen: 255}
	return fuse.OK
}

func (p *PseudoRoot) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if r := p.route(in.NodeId); r != nil {
		return r.Open(cancel, in, out)
	}
	return fuse.EIO
}

func (p *PseudoRoot) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	if r := p.route(in.NodeId); r != nil {
		return r.Read(cancel, in, buf)
	}
	return nil, fuse.EIO
}

func (p *PseudoRoot) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	if r := p.route(in.NodeId); r != nil {
		r.Release(cancel, in)
	}
}

func (p *PseudoRoot) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status { return fuse.ENOSYS }

// OpenDir tells the kernel not to keep the root's listing, which changes
// (unless it skips OPENDIR altogether; then Add and Remove invalidate it).
func (p *PseudoRoot) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.NodeId == fuse.FUSE_ROOT_ID {
		out.Fh = 0
		return fuse.OK
	}
	if r := p.route(in.NodeId); r != nil {
		return r.OpenDir(cancel, in, out)
	}
	return fuse.EIO
}

func (p *PseudoRoot) ReleaseDir(in *fuse.ReleaseIn) {
	if in.NodeId == fuse.FUSE_ROOT_ID {
		return
	}
	if r := p.route(in.NodeId); r != nil {
		r.ReleaseDir(in)
	}
}

func (p *PseudoRoot) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	if in.NodeId == fuse.FUSE_ROOT_ID {
		return p.readRoot(in, out, false)
	}
	if r := p.route(in.NodeId); r != nil {
		return r.ReadDir(cancel, in, out)
	}
	return fuse.EIO
}

func (p *PseudoRoot) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	if in.NodeId == fuse.FUSE_ROOT_ID {
		return p.readRoot(in, out, true)
	}
	if r := p.route(in.NodeId); r != nil {
		return r.ReadDirPlus(cancel, in, out)
	}
	return fuse.EIO
}

// readRoot lists ".", ".." and the images by name; entry i has offset i+1.
func (p *PseudoRoot) readRoot(in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	type ent struct {
		name string
		r    *rawRoot
	}
	p.mu.RLock()
	ents := make([]ent, 0, 2+len(p.names))
	for name, idx := range p.names {
		ents = append(ents, ent{name, p.byIdx[idx]})
	}
	p.mu.RUnlock()
	slices.SortFunc(ents, func(a, b ent) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	ents = append([]ent{{".", nil}, {"..", nil}}, ents...)
	for i := int(min(in.Offset, uint64(len(ents)))); i < len(ents); i++ {
		e := ents[i]
		de := fuse.DirEntry{Name: e.name, Mode: fuse.S_IFDIR, Off: uint64(i + 1), Ino: fuse.FUSE_ROOT_ID}
		if e.r != nil {
			de.Ino = e.r.fs.inoBase | e.r.fs.img.Root()
		}
		if !plus {
			if !out.AddDirEntry(de) {
				break
			}
			continue
		}
		eo := out.AddDirLookupEntry(de)
		if eo == nil {
			break
		}
		// "." and "..": node ID 0, the kernel looks nothing up.
		*eo = fuse.EntryOut{}
		if e.r != nil {
			if st := e.r.entry(e.r.fs.img.Root(), eo); !st.Ok() {
				*eo = fuse.EntryOut{}
			}
		}
	}
	return fuse.OK
}
