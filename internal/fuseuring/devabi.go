package fuseuring

// The layout of a request read from /dev/fuse: the InHeader, then the
// operation's fixed input struct, then its names and data. (On a ring the
// kernel puts the fixed struct in the header's op_in area instead.)

import (
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gonydus/nydus/internal/fuseabi"
)

// devOpInSizes is, by opcode, the size of the fixed input struct that
// follows the InHeader on /dev/fuse: that of the go-fuse type serve
// decodes it as, less the InHeader. Opcodes not listed have none (their
// arguments are names only). RENAME and SETXATTR depend on the protocol
// (devOpInSize).
var devOpInSizes = func() [fuseabi.NumOpcodes]int {
	var s [fuseabi.NumOpcodes]int
	for op, size := range map[uint32]uintptr{
		fuseabi.OpForget:        unsafe.Sizeof(fuse.ForgetIn{}),
		fuseabi.OpGetattr:       unsafe.Sizeof(fuse.GetAttrIn{}),
		fuseabi.OpSetattr:       unsafe.Sizeof(fuse.SetAttrIn{}),
		fuseabi.OpMknod:         unsafe.Sizeof(fuse.MknodIn{}),
		fuseabi.OpMkdir:         unsafe.Sizeof(fuse.MkdirIn{}),
		fuseabi.OpRename2:       unsafe.Sizeof(fuse.RenameIn{}),
		fuseabi.OpLink:          unsafe.Sizeof(fuse.LinkIn{}),
		fuseabi.OpOpen:          unsafe.Sizeof(fuse.OpenIn{}),
		fuseabi.OpOpendir:       unsafe.Sizeof(fuse.OpenIn{}),
		fuseabi.OpRead:          unsafe.Sizeof(fuse.ReadIn{}),
		fuseabi.OpReaddir:       unsafe.Sizeof(fuse.ReadIn{}),
		fuseabi.OpReaddirplus:   unsafe.Sizeof(fuse.ReadIn{}),
		fuseabi.OpWrite:         unsafe.Sizeof(fuse.WriteIn{}),
		fuseabi.OpRelease:       unsafe.Sizeof(fuse.ReleaseIn{}),
		fuseabi.OpReleasedir:    unsafe.Sizeof(fuse.ReleaseIn{}),
		fuseabi.OpFsync:         unsafe.Sizeof(fuse.FsyncIn{}),
		fuseabi.OpFsyncdir:      unsafe.Sizeof(fuse.FsyncIn{}),
		fuseabi.OpGetxattr:      unsafe.Sizeof(fuse.GetXAttrIn{}),
		fuseabi.OpListxattr:     unsafe.Sizeof(fuse.GetXAttrIn{}),
		fuseabi.OpFlush:         unsafe.Sizeof(fuse.FlushIn{}),
		fuseabi.OpGetlk:         unsafe.Sizeof(fuse.LkIn{}),
		fuseabi.OpSetlk:         unsafe.Sizeof(fuse.LkIn{}),
		fuseabi.OpSetlkw:        unsafe.Sizeof(fuse.LkIn{}),
		fuseabi.OpAccess:        unsafe.Sizeof(fuse.AccessIn{}),
		fuseabi.OpCreate:        unsafe.Sizeof(fuse.CreateIn{}),
		fuseabi.OpTmpfile:       unsafe.Sizeof(fuse.CreateIn{}),
		fuseabi.OpInterrupt:     unsafe.Sizeof(fuse.InterruptIn{}),
		fuseabi.OpFallocate:     unsafe.Sizeof(fuse.FallocateIn{}),
		fuseabi.OpLseek:         unsafe.Sizeof(fuse.LseekIn{}),
		fuseabi.OpCopyFileRange: unsafe.Sizeof(fuse.CopyFileRangeIn{}),
		fuseabi.OpStatx:         unsafe.Sizeof(fuse.StatxIn{}),
	} {
		s[op] = int(size) - inHeaderSize
	}
	s[fuseabi.OpBatchForget] = 8 // struct fuse_batch_forget_in: count, dummy
	return s
}()

// Fixed input sizes that depend on the protocol: FUSE_RENAME carries only
// the new directory (struct fuse_rename_in); FUSE_SETXATTR's struct grew
// from 8 to 16 bytes with FUSE_SETXATTR_EXT.
const (
	devRenameInSize         = 8
	devCompatSetxattrInSize = 8
	devSetxattrInSize       = 16
)

// devOpInSize returns the fixed input size of opcode op; setxattrExt says
// whether INIT negotiated FUSE_SETXATTR_EXT.
func devOpInSize(op uint32, setxattrExt bool) int {
	switch op {
	case fuseabi.OpRename:
		return devRenameInSize
	case fuseabi.OpSetxattr:
		if setxattrExt {
			return devSetxattrInSize
		}
		return devCompatSetxattrInSize
	}
	if op < fuseabi.NumOpcodes {
		return devOpInSizes[op]
	}
	return 0
}
