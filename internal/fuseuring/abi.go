package fuseuring

// Wire structures of FUSE over io_uring, as laid down in
// include/uapi/linux/fuse.h (protocol 7.42+) and used by
// fs/fuse/dev_uring.c:
//
//   - Each ring entry registers two user buffers with
//     FUSE_IO_URING_CMD_REGISTER (sqe->addr points to an iovec pair,
//     sqe->len = 2): a header buffer of at least
//     sizeof(struct fuse_uring_req_header) and a payload buffer of at least
//     max(FUSE_MIN_READ_BUFFER, max_write, max_pages*PAGE_SIZE).
//   - For a request the kernel writes the fuse_in_header into in_out, the
//     request's first argument (the per-op struct, e.g. fuse_read_in; it
//     may be empty, e.g. for LOOKUP) into op_in, every further argument
//     (names, write data) back to back into the payload, and
//     ring_ent_in_out{commit_id = unique, payload_sz = bytes in payload}.
//   - The reply is a fuse_out_header in in_out and the reply arguments back
//     to back in the payload, with ring_ent_in_out.payload_sz their length
//     (without the out header); the length must match exactly except for
//     variable-size replies (READ, READDIR, ...). An error reply carries no
//     payload.
//   - The reply is sent, and the entry made available again, with
//     FUSE_IO_URING_CMD_COMMIT_AND_FETCH whose struct fuse_uring_cmd_req in
//     sqe->cmd names the queue and commit_id (the request's unique).
//   - There is one queue per possible CPU; the kernel only switches the
//     connection to the rings once every queue has an entry registered,
//     and until then (after an INIT reply with FUSE_OVER_IO_URING) it holds
//     new requests back. A failed REGISTER turns io_uring off for the
//     connection and releases them to /dev/fuse.
//   - At unmount or abort the kernel completes the parked commands with
//     -ENOTCONN (or -ECANCELED when the ring's task died), and new commits
//     fail with -ENOTCONN.

import "unsafe"

const (
	uringInOutHeaderSize = 128
	uringOpInSize        = 128

	uringCmdRegister       = 1
	uringCmdCommitAndFetch = 2

	// fuseMinReadBuffer is FUSE_MIN_READ_BUFFER.
	fuseMinReadBuffer = 8192
	// maxKernelWrite is the largest max_write go-fuse negotiates
	// (and 256 pages is the kernel's default max_pages limit).
	maxKernelWrite = 1 << 20

	// fuseDevIocClone is FUSE_DEV_IOC_CLONE = _IOR(229, 0, uint32_t).
	fuseDevIocClone = 0x8004e500

	inHeaderSize  = 40
	outHeaderSize = 16
)

// ringEntInOut is struct fuse_uring_ent_in_out.
type ringEntInOut struct {
	Flags     uint64
	CommitID  uint64
	PayloadSz uint32
	Padding   uint32
	Reserved  uint64
}

// reqHeader is struct fuse_uring_req_header.
type reqHeader struct {
	InOut    [uringInOutHeaderSize]byte
	OpIn     [uringOpInSize]byte
	EntInOut ringEntInOut
}

const reqHeaderSize = int(unsafe.Sizeof(reqHeader{}))

var _ [288 - reqHeaderSize]byte
var _ [reqHeaderSize - 288]byte

// cmdReq is struct fuse_uring_cmd_req, placed in sqe->cmd.
type cmdReq struct {
	Flags    uint64
	CommitID uint64
	QID      uint16
	Padding  [6]uint8
}

var _ [sqeCmdSize - unsafe.Sizeof(cmdReq{})]byte

// iovec is struct iovec.
type iovec struct {
	Base uintptr
	Len  uint64
}
