package daemon

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// The requests of handoverFS: each translates the node IDs and handles
// it carries, and those of its reply.

func (h *handoverFS) Lookup(cancel <-chan struct{}, in *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	parent := in.NodeId
	if st := h.hdr(in); !st.Ok() {
		return st
	}
	st := h.RawFileSystem.Lookup(cancel, in, name, out)
	if st.Ok() {
		h.entry(parent, name, out)
	}
	return st
}

func (h *handoverFS) Forget(nodeid, nlookup uint64) {
	h.journal(h.t.forget(nodeid))
	if h.current(nodeid) {
		h.RawFileSystem.Forget(nodeid&(1<<genShift-1), nlookup)
		return
	}
	// The kernel forgets a node with all its lookups at once; the
	// bridge counts only those made here.
	h.mu.Lock()
	o := h.old[nodeid]
	delete(h.old, nodeid)
	if o != nil && h.rev[o.id] == nodeid {
		delete(h.rev, o.id)
	}
	h.mu.Unlock()
	if o != nil {
		h.RawFileSystem.Forget(o.id, o.lookups)
	}
}

func (h *handoverFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	if !h.optionalFh(&in.Fh_) {
		in.Flags_ &^= fuse.FUSE_GETATTR_FH
	}
	return h.RawFileSystem.GetAttr(cancel, in, out)
}

func (h *handoverFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	if in.Valid&fuse.FATTR_FH != 0 && !h.optionalFh(&in.Fh) {
		in.Valid &^= fuse.FATTR_FH
	}
	return h.RawFileSystem.SetAttr(cancel, in, out)
}

func (h *handoverFS) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	if !h.optionalFh(&in.Fh) {
		in.GetattrFlags &^= fuse.FUSE_GETATTR_FH
	}
	return h.RawFileSystem.Statx(cancel, in, out)
}

func (h *handoverFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	parent := in.NodeId
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	st := h.RawFileSystem.Mknod(cancel, in, name, out)
	if st.Ok() {
		h.entry(parent, name, out)
	}
	return st
}

func (h *handoverFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	parent := in.NodeId
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	st := h.RawFileSystem.Mkdir(cancel, in, name, out)
	if resent(&in.InHeader) && st == fuse.Status(syscall.EEXIST) {
		st = h.RawFileSystem.Lookup(cancel, &in.InHeader, name, out)
	}
	if st.Ok() {
		h.entry(parent, name, out)
	}
	return st
}

func (h *handoverFS) Symlink(cancel <-chan struct{}, in *fuse.InHeader, pointedTo, name string, out *fuse.EntryOut) fuse.Status {
	parent := in.NodeId
	if st := h.hdr(in); !st.Ok() {
		return st
	}
	st := h.RawFileSystem.Symlink(cancel, in, pointedTo, name, out)
	if st.Ok() {
		h.entry(parent, name, out)
	}
	return st
}

func (h *handoverFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	parent := in.NodeId
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	old, st := h.toBridge(in.Oldnodeid)
	if !st.Ok() {
		return st
	}
	in.Oldnodeid = old
	st = h.RawFileSystem.Link(cancel, in, name, out)
	if st.Ok() {
		h.entry(parent, name, out)
	}
	return st
}

func (h *handoverFS) Unlink(cancel <-chan struct{}, in *fuse.InHeader, name string) fuse.Status {
	parent := in.NodeId
	if st := h.hdr(in); !st.Ok() {
		return st
	}
	st := h.RawFileSystem.Unlink(cancel, in, name)
	if resent(in) && st == fuse.ENOENT {
		st = fuse.OK // the predecessor removed it and died before answering
	}
	if st.Ok() {
		h.journal(h.t.unlink(parent, name))
	}
	return st
}

func (h *handoverFS) Rmdir(cancel <-chan struct{}, in *fuse.InHeader, name string) fuse.Status {
	parent := in.NodeId
	if st := h.hdr(in); !st.Ok() {
		return st
	}
	st := h.RawFileSystem.Rmdir(cancel, in, name)
	if resent(in) && st == fuse.ENOENT {
		st = fuse.OK
	}
	if st.Ok() {
		h.journal(h.t.unlink(parent, name))
	}
	return st
}

// renameExchange is RENAME_EXCHANGE.
const renameExchange = 1 << 1

func (h *handoverFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	oldDir, newDir := in.NodeId, in.Newdir
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	nd, st := h.toBridge(in.Newdir)
	if !st.Ok() {
		return st
	}
	in.Newdir = nd
	st = h.RawFileSystem.Rename(cancel, in, oldName, newName)
	if st.Ok() {
		h.journal(h.t.rename(oldDir, oldName, newDir, newName, in.Flags&renameExchange != 0))
	}
	return st
}

func (h *handoverFS) Readlink(cancel <-chan struct{}, in *fuse.InHeader) ([]byte, fuse.Status) {
	if st := h.hdr(in); !st.Ok() {
		return nil, st
	}
	return h.RawFileSystem.Readlink(cancel, in)
}

func (h *handoverFS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	return h.RawFileSystem.Access(cancel, in)
}

func (h *handoverFS) GetXAttr(cancel <-chan struct{}, in *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	if st := h.hdr(in); !st.Ok() {
		return 0, st
	}
	return h.RawFileSystem.GetXAttr(cancel, in, attr, dest)
}

func (h *handoverFS) ListXAttr(cancel <-chan struct{}, in *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	if st := h.hdr(in); !st.Ok() {
		return 0, st
	}
	return h.RawFileSystem.ListXAttr(cancel, in, dest)
}

func (h *handoverFS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	return h.RawFileSystem.SetXAttr(cancel, in, attr, data)
}

func (h *handoverFS) RemoveXAttr(cancel <-chan struct{}, in *fuse.InHeader, attr string) fuse.Status {
	if st := h.hdr(in); !st.Ok() {
		return st
	}
	return h.RawFileSystem.RemoveXAttr(cancel, in, attr)
}

func (h *handoverFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	parent := in.NodeId
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	st := h.RawFileSystem.Create(cancel, in, name, out)
	if resent(&in.InHeader) && st == fuse.Status(syscall.EEXIST) {
		// The predecessor created it and died before answering.
		st = h.openExisting(cancel, in, name, out)
	}
	if st.Ok() {
		h.entry(parent, name, &out.EntryOut)
		out.Fh = h.fhOut(out.Fh)
		h.opened(out.NodeId, &out.OpenOut)
	}
	return st
}

func (h *handoverFS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	st := h.RawFileSystem.Tmpfile(cancel, in, out)
	if st.Ok() {
		out.NodeId = h.toKernel(out.NodeId) // nameless: not journalled
		out.Fh = h.fhOut(out.Fh)
	}
	return st
}

func (h *handoverFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	node := in.NodeId
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	st := h.RawFileSystem.Open(cancel, in, out)
	if st.Ok() {
		out.Fh = h.fhOut(out.Fh)
		h.opened(node, out)
	}
	return st
}

// opened records a file handle of node handed out, answering a cached
// open where the kernel holds cached handles of the node (opened by a
// predecessor, whose overlay knew them).
func (h *handoverFS) opened(node uint64, out *fuse.OpenOut) {
	if out.Fh == 0 {
		return
	}
	pt, err := h.t.opened(out.Fh, node, out.OpenFlags&fuse.FOPEN_PASSTHROUGH != 0)
	h.journal(err)
	if !pt && out.OpenFlags&fuse.FOPEN_PASSTHROUGH != 0 {
		out.OpenFlags &^= fuse.FOPEN_PASSTHROUGH
		out.BackingID = 0
	}
}

func (h *handoverFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	st := h.RawFileSystem.OpenDir(cancel, in, out)
	if st.Ok() {
		out.Fh = h.fhOut(out.Fh)
	}
	return st
}

func (h *handoverFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return nil, st
	}
	if st := h.fileFh(in.NodeId, &in.Fh, in.Flags, false); !st.Ok() {
		return nil, st
	}
	return h.RawFileSystem.Read(cancel, in, buf)
}

func (h *handoverFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return 0, st
	}
	if st := h.fileFh(in.NodeId, &in.Fh, in.Flags, false); !st.Ok() {
		return 0, st
	}
	return h.RawFileSystem.Write(cancel, in, data)
}

func (h *handoverFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return 0, st
	}
	if st := h.fileFh(in.NodeId, &in.Fh, in.Flags, false); !st.Ok() {
		return 0, st
	}
	return h.RawFileSystem.Writev(cancel, in, data)
}

func (h *handoverFS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	if st := h.fileFh(in.NodeId, &in.Fh, syscall.O_RDONLY, false); !st.Ok() {
		return st
	}
	return h.RawFileSystem.Lseek(cancel, in, out)
}

func (h *handoverFS) GetLk(cancel <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	h.optionalFh(&in.Fh)
	return h.RawFileSystem.GetLk(cancel, in, out)
}

func (h *handoverFS) SetLk(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	h.optionalFh(&in.Fh)
	return h.RawFileSystem.SetLk(cancel, in)
}

func (h *handoverFS) SetLkw(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	h.optionalFh(&in.Fh)
	return h.RawFileSystem.SetLkw(cancel, in)
}

func (h *handoverFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	h.journal(h.t.released(in.Fh))
	if st := h.hdr(&in.InHeader); !st.Ok() || !h.releaseFh(&in.Fh) {
		return
	}
	h.RawFileSystem.Release(cancel, in)
}

func (h *handoverFS) ReleaseDir(in *fuse.ReleaseIn) {
	if st := h.hdr(&in.InHeader); !st.Ok() || !h.releaseFh(&in.Fh) {
		return
	}
	h.RawFileSystem.ReleaseDir(in)
}

func (h *handoverFS) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return 0, st
	}
	if st := h.fileFh(in.NodeId, &in.FhIn, syscall.O_RDONLY, false); !st.Ok() {
		return 0, st
	}
	out, st := h.toBridge(in.NodeIdOut)
	if !st.Ok() {
		return 0, st
	}
	in.NodeIdOut = out
	if st := h.fileFh(out, &in.FhOut, syscall.O_WRONLY, false); !st.Ok() {
		return 0, st
	}
	return h.RawFileSystem.CopyFileRange(cancel, in)
}

func (h *handoverFS) Ioctl(cancel <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	if st := h.fileFh(in.NodeId, &in.Fh, syscall.O_RDONLY, false); !st.Ok() {
		return st
	}
	return h.RawFileSystem.Ioctl(cancel, in, inbuf, out, outbuf)
}

func (h *handoverFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	h.optionalFh(&in.Fh)
	return h.RawFileSystem.Flush(cancel, in)
}

func (h *handoverFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	if st := h.fileFh(in.NodeId, &in.Fh, syscall.O_RDONLY, false); !st.Ok() {
		return st
	}
	return h.RawFileSystem.Fsync(cancel, in)
}

func (h *handoverFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	if st := h.fileFh(in.NodeId, &in.Fh, syscall.O_RDWR, false); !st.Ok() {
		return st
	}
	return h.RawFileSystem.Fallocate(cancel, in)
}

func (h *handoverFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	if st := h.fileFh(in.NodeId, &in.Fh, syscall.O_RDONLY, true); !st.Ok() {
		return st
	}
	return h.RawFileSystem.ReadDir(cancel, in, out)
}

// ReadDirPlus is not offered (the handed-out entries' node IDs would need
// translating inside the listing): the session is mounted without it.
func (h *handoverFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return fuse.ENOSYS
}

func (h *handoverFS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if st := h.hdr(&in.InHeader); !st.Ok() {
		return st
	}
	if st := h.fileFh(in.NodeId, &in.Fh, syscall.O_RDONLY, true); !st.Ok() {
		return st
	}
	return h.RawFileSystem.FsyncDir(cancel, in)
}

func (h *handoverFS) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	if st := h.hdr(in); !st.Ok() {
		return st
	}
	return h.RawFileSystem.StatFs(cancel, in, out)
}

// resendBit marks a request the kernel sent again (FUSE_NOTIFY_RESEND):
// a predecessor read it and may have carried it out before it died.
const resendBit = 1 << 63

func resent(in *fuse.InHeader) bool { return in.Unique&resendBit != 0 }

// openExisting answers a CREATE resent after the predecessor made the
// file: the file is looked up and opened (in is translated already).
func (h *handoverFS) openExisting(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	st := h.RawFileSystem.Lookup(cancel, &in.InHeader, name, &out.EntryOut)
	if !st.Ok() {
		return st
	}
	open := &fuse.OpenIn{InHeader: in.InHeader, Flags: in.Flags &^ (syscall.O_CREAT | syscall.O_EXCL)}
	open.NodeId = out.NodeId
	if st = h.RawFileSystem.Open(cancel, open, &out.OpenOut); !st.Ok() {
		h.RawFileSystem.Forget(out.NodeId, 1)
	}
	return st
}
