package rafsfs

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
)

// cacheTimeout is how long the kernel may keep entries, attributes and
// negative entries of an image, which never changes: 2^32 s, as upstream
// nydusd's RAFS does.
const cacheTimeout = time.Duration(1<<32) * time.Second

// readerCache bounds the files kept ready for reads that come without a
// handle (zero-message open): each holds the file's chunk map.
const readerCache = 1024

// RawRoot serves the image as the root of a FUSE mount, with no state per
// inode the kernel knows: a node ID is the inode's nid (plus 2; the root is
// FUSE_ROOT_ID), so LOOKUP allocates nothing and FORGET frees nothing,
// whatever the number of inodes looked up, and OPEN and OPENDIR answer
// handle 0 (reads name the file by node ID). Only a bounded set of files
// read lately holds memory. Nothing the kernel holds names state of this
// process, so another daemon can take the session over.
//
// go-fuse's node tree (Root) costs about 300-500 bytes per looked-up inode
// until the kernel forgets it.
func (f *FS) RawRoot() fuse.RawFileSystem { return f.rawServer(0) }

// rawServer serves the image with node IDs base|(nid+2); with base 0 the
// image is the mount's root (FUSE_ROOT_ID), else a directory of a
// PseudoRoot whose index is base's top byte.
func (f *FS) rawServer(base uint64) *rawRoot {
	return &rawRoot{RawFileSystem: fuse.NewDefaultRawFileSystem(), fs: f, base: base,
		recent: map[uint64]*file{}}
}

// nidMask keeps the bits of a node ID below its index byte.
const nidMask = 1<<56 - 1

type rawRoot struct {
	fuse.RawFileSystem // ENOSYS for what a read-only image does not do
	fs                 *FS
	base               uint64 // node ID base: the index byte, or 0 at the root
	server             *fuse.Server

	mu     sync.Mutex
	recent map[uint64]*file // files read lately, by nid
	listed [8]listing       // directories listed last, round robin
	nlist  int
}

// listing is a decoded directory. The kernel reads a directory in a few
// requests, each with a handle of its own under zero-message opendir, the
// last one (past the end) only to learn that it ended: the listing is
// decoded once for all of them.
type listing struct {
	nid  uint64
	ents []rafs.DirEntry
}

func (r *rawRoot) String() string { return "rafs" }

func (r *rawRoot) Init(s *fuse.Server) { r.server = s }

func (r *rawRoot) nid(nodeID uint64) uint64 {
	if nodeID == fuse.FUSE_ROOT_ID && r.base == 0 {
		return r.fs.img.Root()
	}
	return nodeID&nidMask - 2
}

func (r *rawRoot) nodeID(nid uint64) uint64 {
	if nid == r.fs.img.Root() && r.base == 0 {
		return fuse.FUSE_ROOT_ID
	}
	return r.base | (nid + 2)
}

func status(err error) fuse.Status { return fuse.Status(errno(err)) }

// entry fills out for inode nid.
func (r *rawRoot) entry(nid uint64, out *fuse.EntryOut) fuse.Status {
	var ino rafs.Inode
	if err := r.fs.img.ReadInode(nid, &ino); err != nil {
		return status(err)
	}
	out.NodeId = r.nodeID(nid)
	out.Generation = 0
	r.fs.fillAttr(&ino, &out.Attr)
	out.SetEntryTimeout(cacheTimeout)
	out.SetAttrTimeout(cacheTimeout)
	return fuse.OK
}

func (r *rawRoot) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	nid, err := r.fs.img.Lookup(r.nid(h.NodeId), name)
	if err != nil {
		if e := errno(err); e == syscall.ENOENT {
			// A negative entry the kernel may keep.
			*out = fuse.EntryOut{}
			out.SetEntryTimeout(cacheTimeout)
			return fuse.OK
		}
		return status(err)
	}
	return r.entry(nid, out)
}

// Forget frees nothing: nothing was allocated for the inode.
func (r *rawRoot) Forget(nodeID, nlookup uint64) {}

func (r *rawRoot) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	var ino rafs.Inode
	if err := r.fs.img.ReadInode(r.nid(in.NodeId), &ino); err != nil {
		return status(err)
	}
	r.fs.fillAttr(&ino, &out.Attr)
	out.SetTimeout(cacheTimeout)
	return fuse.OK
}

func (r *rawRoot) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	t, err := r.fs.img.Readlink(r.nid(h.NodeId))
	if err != nil {
		return nil, status(err)
	}
	return []byte(t), fuse.OK
}

func (r *rawRoot) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	n, e := r.fs.getxattr(r.nid(h.NodeId), attr, dest)
	return n, fuse.Status(e)
}

func (r *rawRoot) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	n, e := r.fs.listxattr(r.nid(h.NodeId), dest)
	return n, fuse.Status(e)
}

func (r *rawRoot) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	r.fs.statfs(out)
	return fuse.OK
}

// store returns how to write into the page cache of node nodeID.
func (r *rawRoot) store(nodeID uint64) func(int64, []byte) syscall.Errno {
	return func(off int64, data []byte) syscall.Errno {
		if r.server == nil {
			return syscall.ENOSYS
		}
		return syscall.Errno(r.server.InodeNotifyStoreCache(nodeID, off, data))
	}
}

func (r *rawRoot) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.Flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		return fuse.EROFS
	}
	if r.fs.noOpen.Load() {
		return fuse.ENOSYS
	}
	if _, st := r.file(in.NodeId); !st.Ok() {
		return st
	}
	// Handle 0: reads find the file by node ID, so a daemon that takes
	// the session over (failover) serves files opened before it.
	out.Fh = 0
	out.OpenFlags = fuse.FOPEN_KEEP_CACHE
	return fuse.OK
}

// file returns the file of node nodeID: one of the recently read files,
// opened again when it is not among them. Every open has handle 0 (see
// Open), so the node ID names the file.
func (r *rawRoot) file(nodeID uint64) (*file, fuse.Status) {
	nid := r.nid(nodeID)
	r.mu.Lock()
	fl := r.recent[nid]
	r.mu.Unlock()
	if fl != nil {
		return fl, fuse.OK
	}
	fl, err := r.fs.openFile(nid, r.store(nodeID))
	if err != nil {
		return nil, status(err)
	}
	r.mu.Lock()
	if len(r.recent) >= readerCache {
		for k := range r.recent { // drop an arbitrary one
			delete(r.recent, k)
			break
		}
	}
	r.recent[nid] = fl
	r.mu.Unlock()
	return fl, fuse.OK
}

func (r *rawRoot) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	fl, st := r.file(in.NodeId)
	if !st.Ok() {
		return nil, st
	}
	rr, e := fl.read(context.Background(), buf[:min(len(buf), int(in.Size))], int64(in.Offset))
	return rr, fuse.Status(e)
}

// Release frees nothing: opens hold no handle.
func (r *rawRoot) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {}

// Flush answers ENOSYS so the kernel stops sending FLUSH on every close.
func (r *rawRoot) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status { return fuse.ENOSYS }

// OpenDir lets the kernel keep the directory's listing (see
// node.OpendirHandle). The handle is 0, as for files: READDIR names the
// directory by node ID and its position by offset, so a listing read
// across a takeover of the session goes on where it was.
func (r *rawRoot) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	var ino rafs.Inode
	if err := r.fs.img.ReadInode(r.nid(in.NodeId), &ino); err != nil {
		return status(err)
	}
	if !ino.IsDir() {
		return fuse.ENOTDIR
	}
	out.Fh = 0
	out.OpenFlags = fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE
	return fuse.OK
}

func (r *rawRoot) ReleaseDir(in *fuse.ReleaseIn) {}

func (r *rawRoot) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return r.readDir(in, out, false)
}

func (r *rawRoot) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return r.readDir(in, out, true)
}

// readDir lists entries from the request's offset, an entry index: entry
// i has offset i+1. READDIRPLUS answers each entry's attributes from its
// nid.
func (r *rawRoot) readDir(in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	ents, err := r.list(r.nid(in.NodeId))
	if err != nil {
		return status(err)
	}
	for i := int(min(in.Offset, uint64(len(ents)))); i < len(ents); i++ {
		e := ents[i]
		de := fuse.DirEntry{Name: e.Name, Ino: r.fs.inoBase | e.Nid, Mode: layout.ModeOfFileType(e.FileType), Off: uint64(i + 1)}
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
		if st := r.entry(e.Nid, eo); !st.Ok() {
			// The kernel skips an entry with node ID 0.
			*eo = fuse.EntryOut{}
		}
	}
	return fuse.OK
}

// list returns the entries of directory nid.
func (r *rawRoot) list(nid uint64) ([]rafs.DirEntry, error) {
	r.mu.Lock()
	for _, l := range r.listed {
		if l.ents != nil && l.nid == nid {
			r.mu.Unlock()
			return l.ents, nil
		}
	}
	r.mu.Unlock()
	ents, err := r.fs.img.ReadDir(nid)
	if err != nil {
		return nil, err
	}
	if ents == nil {
		ents = []rafs.DirEntry{}
	}
	r.mu.Lock()
	r.listed[r.nlist%len(r.listed)] = listing{nid: nid, ents: ents}
	r.nlist++
	r.mu.Unlock()
	return ents, nil
}
