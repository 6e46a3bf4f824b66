package fuseuring

// A minimal io_uring, driven by raw syscalls. It does only what the FUSE
// transport needs: 128-byte SQEs (IORING_SETUP_SQE128, so that
// IORING_OP_URING_CMD has its 80-byte command area), one submitter thread
// per ring, and blocking waits for completions. No io_uring library is
// used: the list of modules the Go proxy serves here has none, and this
// file is small enough to carry without adding to go.mod.

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Constants of include/uapi/linux/io_uring.h.
const (
	setupSQE128        = 1 << 10
	setupCoopTaskrun   = 1 << 8
	setupSingleIssuer  = 1 << 12
	setupDeferTaskrun  = 1 << 13
	enterGetEvents     = 1 << 0
	featSingleMmap     = 1 << 0
	offSQRing          = 0
	offCQRing          = 0x8000000
	offSQEs            = 0x10000000
	uringOpRead        = 22
	opURingCmd         = 46
	sqeSize            = 128 // with IORING_SETUP_SQE128
	cqeSize            = 16
	sqeCmdOffset       = 48 // offset of sqe->cmd
	sqeCmdSize         = sqeSize - sqeCmdOffset
	ioUringParamsBytes = 120
)

type sqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

type cqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, CQEs, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

type uringParams struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  sqringOffsets
	CQOff                                                                  cqringOffsets
}

var _ [ioUringParamsBytes - unsafe.Sizeof(uringParams{})]byte
var _ [unsafe.Sizeof(uringParams{}) - ioUringParamsBytes]byte

// sqe is one 128-byte submission queue entry. Off holds cmd_op in its
// low 32 bits for IORING_OP_URING_CMD; Cmd is the 80-byte command area.
type sqe struct {
	Opcode      uint8
	Flags       uint8
	Ioprio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	SpliceFdIn  int32
	Cmd         [sqeCmdSize]byte
}

var _ [sqeSize - unsafe.Sizeof(sqe{})]byte
var _ [unsafe.Sizeof(sqe{}) - sqeSize]byte

type cqe struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// ring is one io_uring instance. It is used from a single OS thread.
type ring struct {
	fd       int
	flags    uint32 // IORING_SETUP_* the kernel accepted
	sqMap    []byte
	cqMap    []byte // aliases sqMap with IORING_FEAT_SINGLE_MMAP
	sqeMap   []byte
	sqHead   *uint32
	sqTail   *uint32
	sqMask   uint32
	sqArray  unsafe.Pointer
	sqCount  uint32
	cqHead   *uint32
	cqTail   *uint32
	cqMask   uint32
	cqes     unsafe.Pointer
	tail     uint32 // local SQ tail, published by flush
	toSubmit uint32
}

// newRing sets up an io_uring with at least entries SQEs. It first asks
// for single-issuer, deferred task running (completions are run only when
// the owning thread waits, which is all this transport does) and falls
// back to a plain SQE128 ring on kernels that refuse those flags.
func newRing(entries uint32) (*ring, error) {
	var lastErr error
	for _, flags := range []uint32{
		setupSQE128 | setupSingleIssuer | setupDeferTaskrun,
		setupSQE128 | setupCoopTaskrun,
		setupSQE128,
	} {
		r, err := setupRing(entries, flags)
		if err == nil {
			return r, nil
		}
		lastErr = err
		if !errors.Is(err, unix.EINVAL) {
			break
		}
	}
	return nil, lastErr
}

func setupRing(entries, flags uint32) (*ring, error) {
	var p uringParams
	p.Flags = flags
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup(entries=%d, flags=%#x): %w", entries, flags, errno)
	}
	r := &ring{fd: int(fd), flags: flags}
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()

	sqLen := int(p.SQOff.Array + p.SQEntries*4)
	cqLen := int(p.CQOff.CQEs + p.CQEntries*cqeSize)
	if p.Features&featSingleMmap != 0 {
		sqLen = max(sqLen, cqLen)
	}
	var err error
	r.sqMap, err = unix.Mmap(r.fd, offSQRing, sqLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap io_uring SQ ring: %w", err)
	}
	if p.Features&featSingleMmap != 0 {
		r.cqMap = r.sqMap
	} else {
		r.cqMap, err = unix.Mmap(r.fd, offCQRing, cqLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil, fmt.Errorf("mmap io_uring CQ ring: %w", err)
		}
	}
	r.sqeMap, err = unix.Mmap(r.fd, offSQEs, int(p.SQEntries)*sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap io_uring SQEs: %w", err)
	}
	sq := unsafe.Pointer(&r.sqMap[0])
	cq := unsafe.Pointer(&r.cqMap[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.SQOff.Head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.SQOff.Tail))
	r.sqMask = *(*uint32)(unsafe.Add(sq, p.SQOff.RingMask))
	r.sqArray = unsafe.Add(sq, p.SQOff.Array)
	r.sqCount = p.SQEntries
	r.cqHead = (*uint32)(unsafe.Add(cq, p.CQOff.Head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.CQOff.Tail))
	r.cqMask = *(*uint32)(unsafe.Add(cq, p.CQOff.RingMask))
	r.cqes = unsafe.Add(cq, p.CQOff.CQEs)
	r.tail = atomic.LoadUint32(r.sqTail)
	ok = true
	return r, nil
}

// getSQE returns a zeroed SQE to fill, or nil if the SQ is full (the
// caller then submits first).
func (r *ring) getSQE() *sqe {
	head := atomic.LoadUint32(r.sqHead)
	if r.tail-head >= r.sqCount {
		return nil
	}
	idx := r.tail & r.sqMask
	s := (*sqe)(unsafe.Pointer(&r.sqeMap[int(idx)*sqeSize]))
	*s = sqe{}
	*(*uint32)(unsafe.Add(r.sqArray, idx*4)) = idx
	r.tail++
	r.toSubmit++
	return s
}

// flush publishes the SQEs filled since the last flush.
func (r *ring) flush() {
	atomic.StoreUint32(r.sqTail, r.tail)
}

// submitAndWait submits the pending SQEs and, if wait > 0, blocks until
// at least wait CQEs are available. EINTR is retried.
func (r *ring) submitAndWait(wait uint32) error {
	r.flush()
	for {
		flags := uintptr(0)
		if wait > 0 {
			flags = enterGetEvents
		}
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(r.toSubmit), uintptr(wait), flags, 0, 0)
		if errno == 0 {
			r.toSubmit -= min(uint32(n), r.toSubmit)
			if r.toSubmit == 0 || wait > 0 {
				return nil
			}
			continue
		}
		if errno == unix.EINTR {
			continue
		}
		return fmt.Errorf("io_uring_enter: %w", errno)
	}
}

// peekCQE returns the oldest unseen CQE, or false. The caller calls
// advanceCQ after it is done with it.
func (r *ring) peekCQE() (cqe, bool) {
	head := *r.cqHead
	if head == atomic.LoadUint32(r.cqTail) {
		return cqe{}, false
	}
	c := *(*cqe)(unsafe.Add(r.cqes, uintptr(head&r.cqMask)*cqeSize))
	atomic.StoreUint32(r.cqHead, head+1)
	return c, true
}

func (r *ring) close() {
	if r.sqeMap != nil {
		_ = unix.Munmap(r.sqeMap)
		r.sqeMap = nil
	}
	if r.cqMap != nil && unsafe.SliceData(r.cqMap) != unsafe.SliceData(r.sqMap) {
		_ = unix.Munmap(r.cqMap)
	}
	r.cqMap = nil
	if r.sqMap != nil {
		_ = unix.Munmap(r.sqMap)
		r.sqMap = nil
	}
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}
