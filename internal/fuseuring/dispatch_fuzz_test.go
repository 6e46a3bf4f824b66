package fuseuring

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gonydus/nydus/internal/fuseabi"
)

// fakeFS answers every request it decodes with success and as much data as
// the request allows, so the decoding and reply layout around each call
// run on whatever a request holds.
type fakeFS struct{ fuse.RawFileSystem }

func (fakeFS) Lookup(_ <-chan struct{}, _ *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	out.NodeId, out.Attr.Ino = 2, uint64(len(name))
	return fuse.OK
}

func (fakeFS) Read(_ <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	for i := range buf {
		buf[i] = byte(in.Offset) + byte(i)
	}
	return fuse.ReadResultData(buf), fuse.OK
}

func (fakeFS) GetXAttr(_ <-chan struct{}, _ *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	if len(dest) < len(attr) {
		return uint32(len(attr)), fuse.ERANGE
	}
	return uint32(copy(dest, attr)), fuse.OK
}

func (fakeFS) ReadDir(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	for i := in.Offset; out.AddDirEntry(fuse.DirEntry{Name: "entry", Ino: i + 1, Mode: fuse.S_IFREG, Off: i + 1}); i++ { //nolint:revive // the condition does the work: it adds entries until the buffer is full
	}
	return fuse.OK
}

func (fakeFS) Writev(_ <-chan struct{}, _ *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	n := 0
	for _, d := range data {
		n += len(d)
	}
	return uint32(n), fuse.OK
}

// FuzzServe feeds arbitrary requests (opcode, node, the op_in area, the
// payload and its claimed size) to the dispatcher. Decoding must never
// panic (the file system here does not, so any panic is the dispatcher's),
// and a reply must fit its payload buffer.
func FuzzServe(f *testing.F) {
	le := binary.LittleEndian
	read := make([]byte, 40)
	le.PutUint64(read[8:], 4096) // offset
	le.PutUint32(read[16:], 1<<20)
	f.Add(uint32(fuseabi.OpLookup), uint64(1), []byte{}, []byte("name\x00"), uint32(5))
	f.Add(uint32(fuseabi.OpLookup), uint64(1), []byte{}, []byte("no-nul"), uint32(6))
	f.Add(uint32(fuseabi.OpRead), uint64(2), read, []byte{}, uint32(0))
	f.Add(uint32(fuseabi.OpReaddirplus), uint64(1), read, []byte{}, uint32(0))
	f.Add(uint32(fuseabi.OpGetxattr), uint64(2), []byte{0, 1, 0, 0}, []byte("user.x\x00"), uint32(7))
	f.Add(uint32(fuseabi.OpSetxattr), uint64(2), []byte{3, 0, 0, 0}, []byte("user.x\x00abc"), uint32(10))
	f.Add(uint32(fuseabi.OpRename2), uint64(1), []byte{1, 0, 0, 0, 0, 0, 0, 0}, []byte("a\x00b\x00"), uint32(4))
	f.Add(uint32(fuseabi.OpWrite), uint64(2), read, []byte("data"), uint32(1<<31))
	f.Add(uint32(fuseabi.OpSymlink), uint64(1), []byte{}, []byte("link\x00target\x00"), uint32(12))
	f.Fuzz(func(t *testing.T, opcode uint32, node uint64, opIn, payload []byte, payloadSz uint32) {
		var hdr reqHeader
		ih := (*fuse.InHeader)(unsafe.Pointer(&hdr.InOut[0]))
		ih.Opcode, ih.NodeId, ih.Unique = opcode%fuseabi.NumOpcodes, node, 7
		copy(hdr.OpIn[:], opIn)
		e := &entry{hdr: &hdr, payload: make([]byte, 64<<10)}
		copy(e.payload, payload)
		var panicked any
		h := &handler{fs: fakeFS{fuse.NewDefaultRawFileSystem()}, cancel: make(chan struct{}),
			panicHandler: func(r any) fuse.Status { panicked = r; return fuse.EIO }}
		n, st := h.serve(e, e.payload[:min(int(payloadSz), len(e.payload))])
		if panicked != nil {
			t.Fatalf("opcode %d: the dispatcher panicked: %v", ih.Opcode, panicked)
		}
		if st == fuse.OK && int(n) > len(e.payload) {
			t.Fatalf("opcode %d: a %d-byte reply in a %d-byte payload", ih.Opcode, n, len(e.payload))
		}
	})
}
