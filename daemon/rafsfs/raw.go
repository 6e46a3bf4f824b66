package rafsfs

import (
	"sync/atomic"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gonydus/nydus/internal/fuseabi"
)

// RawFS wraps a go-fuse raw filesystem (fs.NewNodeFS): it counts the
// requests it answers by opcode and, for a tree that never changes, lets
// the kernel skip OPENDIR and RELEASEDIR.
//
// Zero-message opendir: when the kernel offers CAP_NO_OPENDIR_SUPPORT, an
// OPENDIR answered with ENOSYS makes it stop sending OPENDIR and RELEASEDIR
// on the connection and treat every directory as opened with
// FOPEN_KEEP_CACHE|FOPEN_CACHE_DIR: it reads each directory once and serves
// later readdirs from its cache. READDIR(PLUS) then arrives with no file
// handle; RawFS opens one for the request, seeks to the request's offset
// and releases it.
type RawFS struct {
	fuse.RawFileSystem
	reqs      *Requests
	immutable bool
	noOpendir atomic.Bool
}

// RawOption configures a RawFS.
type RawOption func(*RawFS)

// Immutable declares that no directory of the tree ever changes, which
// allows zero-message opendir when the kernel offers it. Never use it over
// a writable tree, nor over a directory whose children are added and
// removed unless it invalidates its listing in the kernel (PseudoRoot).
func Immutable() RawOption { return func(r *RawFS) { r.immutable = true } }

// NewRawFS wraps inner.
func NewRawFS(inner fuse.RawFileSystem, opts ...RawOption) *RawFS {
	r := &RawFS{RawFileSystem: inner, reqs: &Requests{}}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Requests returns the request counters.
func (r *RawFS) Requests() *Requests { return r.reqs }

// NoOpendir reports whether zero-message opendir is in use.
func (r *RawFS) NoOpendir() bool { return r.noOpendir.Load() }

// Init learns what the kernel offered; the server has answered INIT.
func (r *RawFS) Init(s *fuse.Server) {
	r.RawFileSystem.Init(s)
	if r.immutable {
		in := s.KernelSettings()
		r.noOpendir.Store(in.Flags64()&fuse.CAP_NO_OPENDIR_SUPPORT != 0)
	}
}

func (r *RawFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	r.reqs.add(fuseabi.OpLookup)
	return r.RawFileSystem.Lookup(cancel, h, name, out)
}

func (r *RawFS) Forget(nodeid, nlookup uint64) {
	r.reqs.add(fuseabi.OpForget)
	r.RawFileSystem.Forget(nodeid, nlookup)
}

func (r *RawFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	r.reqs.add(fuseabi.OpGetattr)
	return r.RawFileSystem.GetAttr(cancel, in, out)
}

func (r *RawFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	r.reqs.add(fuseabi.OpSetattr)
	return r.RawFileSystem.SetAttr(cancel, in, out)
}

func (r *RawFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	r.reqs.add(fuseabi.OpMknod)
	return r.RawFileSystem.Mknod(cancel, in, name, out)
}

func (r *RawFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	r.reqs.add(fuseabi.OpMkdir)
	return r.RawFileSystem.Mkdir(cancel, in, name, out)
}

func (r *RawFS) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	r.reqs.add(fuseabi.OpUnlink)
	return r.RawFileSystem.Unlink(cancel, h, name)
}

func (r *RawFS) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	r.reqs.add(fuseabi.OpRmdir)
	return r.RawFileSystem.Rmdir(cancel, h, name)
}

func (r *RawFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	r.reqs.add(fuseabi.OpRename)
	return r.RawFileSystem.Rename(cancel, in, oldName, newName)
}

func (r *RawFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	r.reqs.add(fuseabi.OpLink)
	return r.RawFileSystem.Link(cancel, in, name, out)
}

func (r *RawFS) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	r.reqs.add(fuseabi.OpSymlink)
	return r.RawFileSystem.Symlink(cancel, h, target, name, out)
}

func (r *RawFS) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	r.reqs.add(fuseabi.OpReadlink)
	return r.RawFileSystem.Readlink(cancel, h)
}

func (r *RawFS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	r.reqs.add(fuseabi.OpAccess)
	return r.RawFileSystem.Access(cancel, in)
}

func (r *RawFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	r.reqs.add(fuseabi.OpGetxattr)
	return r.RawFileSystem.GetXAttr(cancel, h, attr, dest)
}

func (r *RawFS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	r.reqs.add(fuseabi.OpListxattr)
	return r.RawFileSystem.ListXAttr(cancel, h, dest)
}

func (r *RawFS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	r.reqs.add(fuseabi.OpSetxattr)
	return r.RawFileSystem.SetXAttr(cancel, in, attr, data)
}

func (r *RawFS) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	r.reqs.add(fuseabi.OpRemovexattr)
	return r.RawFileSystem.RemoveXAttr(cancel, h, attr)
}

func (r *RawFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	r.reqs.add(fuseabi.OpCreate)
	return r.RawFileSystem.Create(cancel, in, name, out)
}

func (r *RawFS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	r.reqs.add(fuseabi.OpTmpfile)
	return r.RawFileSystem.Tmpfile(cancel, in, out)
}

func (r *RawFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	r.reqs.add(fuseabi.OpOpen)
	return r.RawFileSystem.Open(cancel, in, out)
}

func (r *RawFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	r.reqs.add(fuseabi.OpRead)
	return r.RawFileSystem.Read(cancel, in, buf)
}

func (r *RawFS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	r.reqs.add(fuseabi.OpLseek)
	return r.RawFileSystem.Lseek(cancel, in, out)
}

func (r *RawFS) GetLk(cancel <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	r.reqs.add(fuseabi.OpGetlk)
	return r.RawFileSystem.GetLk(cancel, in, out)
}

func (r *RawFS) SetLk(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	r.reqs.add(fuseabi.OpSetlk)
	return r.RawFileSystem.SetLk(cancel, in)
}

func (r *RawFS) SetLkw(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	r.reqs.add(fuseabi.OpSetlkw)
	return r.RawFileSystem.SetLkw(cancel, in)
}

func (r *RawFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	r.reqs.add(fuseabi.OpRelease)
	r.RawFileSystem.Release(cancel, in)
}

func (r *RawFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	r.reqs.add(fuseabi.OpWrite)
	return r.RawFileSystem.Write(cancel, in, data)
}

func (r *RawFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	r.reqs.add(fuseabi.OpWrite)
	return r.RawFileSystem.Writev(cancel, in, data)
}

func (r *RawFS) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	r.reqs.add(fuseabi.OpCopyFileRange)
	return r.RawFileSystem.CopyFileRange(cancel, in)
}

func (r *RawFS) Ioctl(cancel <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	r.reqs.add(fuseabi.OpIoctl)
	return r.RawFileSystem.Ioctl(cancel, in, inbuf, out, outbuf)
}

func (r *RawFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	r.reqs.add(fuseabi.OpFlush)
	return r.RawFileSystem.Flush(cancel, in)
}

func (r *RawFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	r.reqs.add(fuseabi.OpFsync)
	return r.RawFileSystem.Fsync(cancel, in)
}

func (r *RawFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	r.reqs.add(fuseabi.OpFallocate)
	return r.RawFileSystem.Fallocate(cancel, in)
}

func (r *RawFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	r.reqs.add(fuseabi.OpOpendir)
	if r.noOpendir.Load() {
		return fuse.ENOSYS
	}
	return r.RawFileSystem.OpenDir(cancel, in, out)
}

func (r *RawFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	r.reqs.add(fuseabi.OpReaddir)
	return r.readDir(cancel, in, out, r.RawFileSystem.ReadDir)
}

func (r *RawFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	r.reqs.add(fuseabi.OpReaddirplus)
	return r.readDir(cancel, in, out, r.RawFileSystem.ReadDirPlus)
}

// readDir serves a directory read; one without a handle (zero-message
// opendir) gets a handle for this request only.
func (r *RawFS) readDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList,
	read func(<-chan struct{}, *fuse.ReadIn, *fuse.DirEntryList) fuse.Status) fuse.Status {
	if in.Fh != 0 || !r.noOpendir.Load() {
		return read(cancel, in, out)
	}
	var oo fuse.OpenOut
	oi := fuse.OpenIn{InHeader: in.InHeader, Flags: in.Flags}
	if st := r.RawFileSystem.OpenDir(cancel, &oi, &oo); !st.Ok() {
		return st
	}
	defer r.RawFileSystem.ReleaseDir(&fuse.ReleaseIn{InHeader: in.InHeader, Fh: oo.Fh})
	req := *in
	req.Fh = oo.Fh
	return read(cancel, &req, out)
}

func (r *RawFS) ReleaseDir(in *fuse.ReleaseIn) {
	r.reqs.add(fuseabi.OpReleasedir)
	r.RawFileSystem.ReleaseDir(in)
}

func (r *RawFS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	r.reqs.add(fuseabi.OpFsyncdir)
	return r.RawFileSystem.FsyncDir(cancel, in)
}

func (r *RawFS) StatFs(cancel <-chan struct{}, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	r.reqs.add(fuseabi.OpStatfs)
	return r.RawFileSystem.StatFs(cancel, h, out)
}

func (r *RawFS) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	r.reqs.add(fuseabi.OpStatx)
	return r.RawFileSystem.Statx(cancel, in, out)
}
