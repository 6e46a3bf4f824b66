package fuseuring

import (
	"bytes"
	"sync"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gonydus/nydus/internal/fuseabi"
)

// go-fuse answers these itself (see fuse.Server.WaitMount): a LOOKUP of
// this name in the root and any request on this node id.
const (
	pollHackName  = ".go-fuse-epoll-hack"
	pollHackInode = ^uint64(0)
)

// entry is one ring entry: its registered buffers and per-request state.
type entry struct {
	idx     int
	hdr     *reqHeader
	payload []byte
	iov     [2]iovec
	// commitID is the unique of the request being served.
	commitID uint64
	// reregistered is set when the entry was registered again after the
	// kernel gave it back on a live connection, until it serves a request.
	reregistered bool
	// scratch holds the decoded input struct (InHeader + op struct),
	// 8-byte aligned.
	scratch [32]uint64
}

// inStruct assembles *T (a go-fuse input type that starts with an
// InHeader) from the in_out and op_in areas of the entry's header.
func inStruct[T any](e *entry) *T {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if size > len(e.scratch)*8 {
		panic("fuseuring: input struct too large")
	}
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&e.scratch[0])), len(e.scratch)*8)
	clear(buf[:size])
	copy(buf[:inHeaderSize], e.hdr.InOut[:inHeaderSize])
	if size > inHeaderSize {
		copy(buf[inHeaderSize:size], e.hdr.OpIn[:min(size-inHeaderSize, uringOpInSize)])
	}
	return (*T)(unsafe.Pointer(&e.scratch[0]))
}

// outStruct zeroes the start of the payload and returns it as *T.
func outStruct[T any](e *entry) (*T, uint32) {
	var zero T
	size := int(unsafe.Sizeof(zero))
	clear(e.payload[:size])
	return (*T)(unsafe.Pointer(&e.payload[0])), uint32(size)
}

// cstrings splits n NUL-terminated strings off the front of b, copying
// them (the payload is reused for the reply). rest is what follows.
func cstrings(b []byte, n int) (names []string, rest []byte, ok bool) {
	names = make([]string, 0, n)
	for range n {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return nil, nil, false
		}
		names = append(names, string(b[:i]))
		b = b[i+1:]
	}
	return names, b, true
}

func cstring(b []byte) (string, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", false
	}
	return string(b[:i]), true
}

// handler calls the file system the way go-fuse's own server would,
// honouring the mount options that change what reaches it.
type handler struct {
	fs                   fuse.RawFileSystem
	cancel               chan struct{} // never closed: see the package doc
	noXattr              bool          // MountOptions.DisableXAttrs
	ignoreSecurityLabels bool          // MountOptions.IgnoreSecurityLabels
	panicHandler         func(any) fuse.Status
	singleThreaded       bool       // MountOptions.SingleThreaded
	mu                   sync.Mutex // serializes calls when singleThreaded
}

// setOptions takes the MountOptions serve honours.
func (h *handler) setOptions(mo *fuse.MountOptions) {
	h.noXattr = mo.DisableXAttrs
	h.ignoreSecurityLabels = mo.IgnoreSecurityLabels
	h.panicHandler = mo.PanicHandler
	h.singleThreaded = mo.SingleThreaded
}

// serve decodes the request in e, calls the file system and leaves the
// reply arguments at the start of e.payload. It returns their length and
// the status. Unknown opcodes get ENOSYS; a panic in the file system goes
// to MountOptions.PanicHandler, or becomes EIO.
func (h *handler) serve(e *entry, in []byte) (n uint32, st fuse.Status) { //nolint:revive // function-length: one short case per opcode
	hdr := *inStruct[fuse.InHeader](e)
	if hdr.NodeId == pollHackInode || hdr.NodeId == fuse.FUSE_ROOT_ID && hdr.Opcode == fuseabi.OpLookup && bytes.Equal(bytes.TrimRight(in, "\x00"), []byte(pollHackName)) {
		return pollHack(e, hdr.Opcode)
	}
	switch hdr.Opcode {
	case fuseabi.OpSetxattr, fuseabi.OpGetxattr, fuseabi.OpListxattr, fuseabi.OpRemovexattr:
		if h.noXattr {
			return 0, fuse.ENOSYS
		}
		if h.ignoreSecurityLabels && hdr.Opcode == fuseabi.OpGetxattr {
			switch name, _ := cstring(in); name {
			case "security.capability", "system.posix_acl_access", "system.posix_acl_default":
				return 0, fuse.ENOATTR
			}
		}
	}
	if h.singleThreaded {
		h.mu.Lock()
		defer h.mu.Unlock()
	}
	defer func() {
		if r := recover(); r != nil {
			n, st = 0, fuse.EIO
			if h.panicHandler != nil {
				if s := h.panicHandler(r); s != fuse.OK {
					st = s
				}
			}
		}
	}()
	fs, cancel := h.fs, h.cancel
	switch hdr.Opcode {
	case fuseabi.OpLookup:
		name, ok := cstring(in)
		if !ok {
			return 0, fuse.EINVAL
		}
		out, sz := outStruct[fuse.EntryOut](e)
		return sz, fs.Lookup(cancel, &hdr, name, out)
	case fuseabi.OpGetattr:
		out, sz := outStruct[fuse.AttrOut](e)
		return sz, fs.GetAttr(cancel, inStruct[fuse.GetAttrIn](e), out)
	case fuseabi.OpSetattr:
		out, sz := outStruct[fuse.AttrOut](e)
		return sz, fs.SetAttr(cancel, inStruct[fuse.SetAttrIn](e), out)
	case fuseabi.OpReadlink:
		b, st := fs.Readlink(cancel, &hdr)
		if !st.Ok() {
			return 0, st
		}
		if len(b) > len(e.payload) {
			return 0, fuse.Status(34) // ERANGE
		}
		return uint32(copy(e.payload, b)), fuse.OK
	case fuseabi.OpSymlink:
		names, _, ok := cstrings(in, 2)
		if !ok {
			return 0, fuse.EINVAL
		}
		out, sz := outStruct[fuse.EntryOut](e)
		return sz, fs.Symlink(cancel, &hdr, names[1], names[0], out)
	case fuseabi.OpMknod:
		name, ok := cstring(in)
		if !ok {
			return 0, fuse.EINVAL
		}
		out, sz := outStruct[fuse.EntryOut](e)
		return sz, fs.Mknod(cancel, inStruct[fuse.MknodIn](e), name, out)
	case fuseabi.OpMkdir:
		name, ok := cstring(in)
		if !ok {
			return 0, fuse.EINVAL
		}
		out, sz := outStruct[fuse.EntryOut](e)
		return sz, fs.Mkdir(cancel, inStruct[fuse.MkdirIn](e), name, out)
	case fuseabi.OpUnlink, fuseabi.OpRmdir:
		name, ok := cstring(in)
		if !ok {
			return 0, fuse.EINVAL
		}
		if hdr.Opcode == fuseabi.OpUnlink {
			return 0, fs.Unlink(cancel, &hdr, name)
		}
		return 0, fs.Rmdir(cancel, &hdr, name)
	case fuseabi.OpRename, fuseabi.OpRename2:
		names, _, ok := cstrings(in, 2)
		if !ok {
			return 0, fuse.EINVAL
		}
		return 0, fs.Rename(cancel, inStruct[fuse.RenameIn](e), names[0], names[1])
	case fuseabi.OpLink:
		name, ok := cstring(in)
		if !ok {
			return 0, fuse.EINVAL
		}
		out, sz := outStruct[fuse.EntryOut](e)
		return sz, fs.Link(cancel, inStruct[fuse.LinkIn](e), name, out)
	case fuseabi.OpOpen, fuseabi.OpOpendir:
		out, sz := outStruct[fuse.OpenOut](e)
		if hdr.Opcode == fuseabi.OpOpen {
			return sz, fs.Open(cancel, inStruct[fuse.OpenIn](e), out)
		}
		return sz, fs.OpenDir(cancel, inStruct[fuse.OpenIn](e), out)
	case fuseabi.OpRead:
		rin := inStruct[fuse.ReadIn](e)
		size := min(int(rin.Size), len(e.payload))
		buf := e.payload[:size]
		res, st := fs.Read(cancel, rin, buf)
		if res != nil {
			defer res.Done()
		}
		if !st.Ok() {
			return 0, st
		}
		if res == nil {
			return 0, fuse.OK
		}
		data, st := res.Bytes(buf)
		if !st.Ok() {
			return 0, st
		}
		if len(data) > size {
			data = data[:size]
		}
		if len(data) > 0 && unsafe.SliceData(data) != unsafe.SliceData(buf) {
			copy(buf, data)
		}
		return uint32(len(data)), fuse.OK
	case fuseabi.OpWrite:
		win := inStruct[fuse.WriteIn](e)
		data := in
		if int(win.Size) < len(data) {
			data = data[:win.Size]
		}
		written, st := fs.Writev(cancel, win, [][]byte{data})
		if st == fuse.ENOSYS {
			written, st = fs.Write(cancel, win, data)
		}
		if !st.Ok() {
			return 0, st
		}
		out, sz := outStruct[fuse.WriteOut](e)
		out.Size = written
		return sz, fuse.OK
	case fuseabi.OpStatfs:
		out, sz := outStruct[fuse.StatfsOut](e)
		return sz, fs.StatFs(cancel, &hdr, out)
	case fuseabi.OpRelease:
		fs.Release(cancel, inStruct[fuse.ReleaseIn](e))
		return 0, fuse.OK
	case fuseabi.OpReleasedir:
		fs.ReleaseDir(inStruct[fuse.ReleaseIn](e))
		return 0, fuse.OK
	case fuseabi.OpFsync:
		return 0, fs.Fsync(cancel, inStruct[fuse.FsyncIn](e))
	case fuseabi.OpFsyncdir:
		return 0, fs.FsyncDir(cancel, inStruct[fuse.FsyncIn](e))
	case fuseabi.OpSetxattr:
		name, ok := cstring(in)
		if !ok {
			return 0, fuse.EINVAL
		}
		sin := inStruct[fuse.SetXAttrIn](e)
		value := in[len(name)+1:]
		if int(sin.Size) < len(value) {
			value = value[:sin.Size]
		}
		return 0, fs.SetXAttr(cancel, sin, name, value)
	case fuseabi.OpGetxattr, fuseabi.OpListxattr:
		gin := inStruct[fuse.GetXAttrIn](e)
		var name string
		if hdr.Opcode == fuseabi.OpGetxattr {
			var ok bool
			if name, ok = cstring(in); !ok {
				return 0, fuse.EINVAL
			}
		}
		dest := e.payload[:min(int(gin.Size), len(e.payload))]
		var sz uint32
		if hdr.Opcode == fuseabi.OpGetxattr {
			sz, st = fs.GetXAttr(cancel, &hdr, name, dest)
		} else {
			sz, st = fs.ListXAttr(cancel, &hdr, dest)
		}
		if gin.Size == 0 {
			if st == fuse.ERANGE {
				st = fuse.OK
			}
			if !st.Ok() {
				return 0, st
			}
			out, n := outStruct[fuse.GetXAttrOut](e)
			out.Size = sz
			return n, fuse.OK
		}
		if !st.Ok() {
			return 0, st
		}
		if int(sz) > len(dest) {
			return 0, fuse.ERANGE
		}
		return sz, fuse.OK
	case fuseabi.OpRemovexattr:
		name, ok := cstring(in)
		if !ok {
			return 0, fuse.EINVAL
		}
		return 0, fs.RemoveXAttr(cancel, &hdr, name)
	case fuseabi.OpFlush:
		return 0, fs.Flush(cancel, inStruct[fuse.FlushIn](e))
	case fuseabi.OpReaddir, fuseabi.OpReaddirplus:
		rin := inStruct[fuse.ReadIn](e)
		list := fuse.NewDirEntryList(e.payload[:min(int(rin.Size), len(e.payload))], rin.Offset)
		if hdr.Opcode == fuseabi.OpReaddir {
			st = fs.ReadDir(cancel, rin, list)
		} else {
			st = fs.ReadDirPlus(cancel, rin, list)
		}
		if !st.Ok() {
			return 0, st
		}
		return uint32(len(list.Bytes())), fuse.OK
	case fuseabi.OpGetlk:
		out, sz := outStruct[fuse.LkOut](e)
		return sz, fs.GetLk(cancel, inStruct[fuse.LkIn](e), out)
	case fuseabi.OpSetlk:
		return 0, fs.SetLk(cancel, inStruct[fuse.LkIn](e))
	case fuseabi.OpSetlkw:
		return 0, fs.SetLkw(cancel, inStruct[fuse.LkIn](e))
	case fuseabi.OpAccess:
		return 0, fs.Access(cancel, inStruct[fuse.AccessIn](e))
	case fuseabi.OpCreate, fuseabi.OpTmpfile:
		cin := inStruct[fuse.CreateIn](e)
		if hdr.Opcode == fuseabi.OpTmpfile {
			out, sz := outStruct[fuse.CreateOut](e)
			return sz, fs.Tmpfile(cancel, cin, out)
		}
		name, ok := cstring(in)
		if !ok {
			return 0, fuse.EINVAL
		}
		out, sz := outStruct[fuse.CreateOut](e)
		return sz, fs.Create(cancel, cin, name, out)
	case fuseabi.OpFallocate:
		return 0, fs.Fallocate(cancel, inStruct[fuse.FallocateIn](e))
	case fuseabi.OpLseek:
		out, sz := outStruct[fuse.LseekOut](e)
		return sz, fs.Lseek(cancel, inStruct[fuse.LseekIn](e), out)
	case fuseabi.OpCopyFileRange:
		written, st := fs.CopyFileRange(cancel, inStruct[fuse.CopyFileRangeIn](e))
		if !st.Ok() {
			return 0, st
		}
		out, sz := outStruct[fuse.WriteOut](e)
		out.Size = written
		return sz, fuse.OK
	case fuseabi.OpStatx:
		out, sz := outStruct[fuse.StatxOut](e)
		return sz, fs.Statx(cancel, inStruct[fuse.StatxIn](e), out)
	case fuseabi.OpDestroy:
		return 0, fuse.OK
	default:
		// IOCTL, POLL, BMAP, NOTIFY_REPLY, SYNCFS, mappings and anything
		// newer. (INIT, FORGET, BATCH_FORGET and INTERRUPT never come
		// through a ring: the kernel keeps them on /dev/fuse.)
		return 0, fuse.ENOSYS
	}
}

// pollHack answers like go-fuse does for its ".go-fuse-epoll-hack" file,
// which fuse.Server.WaitMount opens and polls.
func pollHack(e *entry, opcode uint32) (uint32, fuse.Status) {
	attr := fuse.Attr{Ino: pollHackInode, Mode: fuse.S_IFREG | 0o644, Nlink: 1}
	switch opcode {
	case fuseabi.OpLookup:
		out, sz := outStruct[fuse.EntryOut](e)
		out.NodeId = pollHackInode
		out.Attr = attr
		return sz, fuse.OK
	case fuseabi.OpOpen:
		out, sz := outStruct[fuse.OpenOut](e)
		out.Fh = pollHackInode
		return sz, fuse.OK
	case fuseabi.OpGetattr, fuseabi.OpSetattr:
		out, sz := outStruct[fuse.AttrOut](e)
		out.Attr = attr
		return sz, fuse.OK
	case fuseabi.OpGetxattr:
		return 0, fuse.ENODATA
	case fuseabi.OpPoll:
		return 0, fuse.ENOSYS
	case fuseabi.OpAccess, fuseabi.OpFlush, fuseabi.OpRelease:
		return 0, fuse.OK
	default:
		return 0, fuse.ERANGE
	}
}
