package fuseuring

// One queue: a ring on a pinned thread that registers its entries,
// serves the requests the kernel puts in them and commits the replies.

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/fuseabi"
)

type queue struct {
	t       *Transport
	qid     int
	devFD   int
	wakeFD  int
	hdrMem  []byte
	payMem  []byte
	entries []*entry
	wakeBuf [1]uint64
	// die makes the queue thread exit at its next wake-up as if it had
	// died (tests).
	die atomic.Bool
	// completed carries entries served by goroutines (WithAsync) back
	// to the queue thread.
	completed chan *entry
	reqs      atomic.Uint64
	errs      atomic.Uint64
	ops       [fuseabi.NumOpcodes]atomic.Uint64
	done      chan struct{}
}

func (t *Transport) newQueue(qid int, clone func() (int, error)) (*queue, error) {
	q := &queue{t: t, qid: qid, devFD: -1, wakeFD: -1, done: make(chan struct{}), completed: make(chan *entry, t.cfg.entries)}
	ok := false
	defer func() {
		if !ok {
			q.release(true)
			if q.wakeFD >= 0 {
				unix.Close(q.wakeFD)
			}
		}
	}()
	var err error
	if q.devFD, err = clone(); err != nil {
		return nil, err
	}
	if q.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("fuseuring: eventfd: %w", err)
	}
	ne := t.cfg.entries
	if q.hdrMem, err = unix.Mmap(-1, 0, ne*reqHeaderSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		return nil, fmt.Errorf("fuseuring: mmap headers: %w", err)
	}
	if q.payMem, err = unix.Mmap(-1, 0, ne*t.cfg.payloadSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		return nil, fmt.Errorf("fuseuring: mmap payload buffers: %w", err)
	}
	for i := range ne {
		e := &entry{
			idx:     i,
			hdr:     (*reqHeader)(unsafe.Pointer(&q.hdrMem[i*reqHeaderSize])),
			payload: q.payMem[i*t.cfg.payloadSize : (i+1)*t.cfg.payloadSize : (i+1)*t.cfg.payloadSize],
		}
		e.iov[0] = iovec{Base: uintptr(unsafe.Pointer(e.hdr)), Len: uint64(reqHeaderSize)}
		e.iov[1] = iovec{Base: uintptr(unsafe.Pointer(&e.payload[0])), Len: uint64(len(e.payload))}
		q.entries = append(q.entries, e)
	}
	ok = true
	return q, nil
}

// release closes the queue's descriptors and, if freeMem, unmaps its
// buffers (only safe once the kernel holds no entry of it).
func (q *queue) release(freeMem bool) {
	if q.devFD >= 0 {
		unix.Close(q.devFD)
		q.devFD = -1
	}
	if freeMem {
		if q.hdrMem != nil {
			unix.Munmap(q.hdrMem)
			q.hdrMem = nil
		}
		if q.payMem != nil {
			unix.Munmap(q.payMem)
			q.payMem = nil
		}
	}
}

const wakeTag = ^uint64(0)

// run is the queue's thread: register the entries, then serve requests
// until the connection ends or Close wakes it.
func (q *queue) run(ready chan<- error) { //nolint:revive // function-length: register, serve and tear down share the locked thread's state
	// The thread stays locked: it exits with the goroutine, and the ring
	// (created and used only here) goes with it.
	runtime.LockOSThread()
	defer close(q.done)
	log := q.t.log.With("qid", q.qid)

	if q.t.cfg.pin {
		var set unix.CPUSet
		set.Set(q.qid)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			log.Debug("fuseuring: cannot pin queue thread", "err", err)
		}
	}
	r, err := newRing(uint32(len(q.entries) + 1))
	if err != nil {
		q.release(true)
		ready <- fmt.Errorf("%w: queue %d: %w", ErrUnavailable, q.qid, err)
		return
	}
	// live counts the entries the kernel may still hand a request: it
	// drops only when the kernel gives an entry back (an error
	// completion). While it is above zero the queue must not stop, or
	// the requests the kernel queues here are stranded: if it stops
	// anyway (a panic, an io_uring_enter error, the test hook), the
	// connection is aborted before the ring is closed.
	live := 0
	lost := false // every entry lost on a live connection
	freeMem := true
	stopped := "connection ended"
	defer func() {
		if p := recover(); p != nil {
			stopped = fmt.Sprintf("panic: %v\n%s", p, debug.Stack())
		}
		if live > 0 || lost {
			freeMem = false // the kernel may still hold entries
			log.Error("fuseuring: queue thread stops while the connection lives; aborting the connection", "reason", stopped, "conn", q.t.conn)
			if err := q.t.abortConn(); err != nil {
				log.Error("fuseuring: cannot abort the FUSE connection: requests queued on this CPU's ring may never be answered", "err", err)
			}
		}
		r.close()
		q.release(freeMem)
	}()

	for _, e := range q.entries {
		q.register(r, e)
	}
	q.armWake(r)
	err = r.submitAndWait(0)
	runtime.KeepAlive(q.entries)
	if err == nil {
		live = len(q.entries)
		// A failed REGISTER completes at once; a good one stays queued.
		for {
			c, ok := r.peekCQE()
			if !ok {
				break
			}
			if c.UserData != wakeTag && c.Res < 0 {
				err = fmt.Errorf("fuseuring: queue %d: FUSE_IO_URING_CMD_REGISTER: %w", q.qid, syscall.Errno(-c.Res))
				live--
			}
		}
	} else {
		err = fmt.Errorf("fuseuring: queue %d: register: %w", q.qid, err)
		// Whether the kernel took any REGISTER is unknown: an abort is
		// the only safe end.
		live = len(q.entries)
		stopped = err.Error()
		ready <- err
		return
	}
	ready <- err
	if err != nil {
		freeMem = false // other entries may still be registered
		if live > 0 {
			// Some entries did register: they serve until the connection
			// ends (Start failed; see the package doc).
			log.Warn("fuseuring: queue partly registered; serving its entries until the connection ends", "err", err, "entries", live)
		}
	}

	spawned := false
	for live > 0 {
		if spawned {
			// The new goroutines sit on this thread's P, which the
			// blocking io_uring_enter below would keep in a syscall
			// until sysmon retakes it (up to 10ms when all Ps are in
			// such waits). Yielding hands the P over now.
			spawned = false
			runtime.Gosched()
		}
		if err := r.submitAndWait(1); err != nil {
			stopped = err.Error()
			return
		}
		for {
			c, ok := r.peekCQE()
			if !ok {
				break
			}
			if c.UserData == wakeTag {
				if q.die.Load() {
					stopped = "killed (test hook)"
					runtime.Goexit()
				}
				for drained := false; !drained; {
					select {
					case e := <-q.completed:
						q.commit(r, e)
					default:
						drained = true
					}
				}
				q.armWake(r)
				continue
			}
			if c.UserData >= uint64(len(q.entries)) {
				continue
			}
			e := q.entries[c.UserData]
			if c.Res < 0 {
				errno := syscall.Errno(-c.Res)
				if errno == unix.ENOTCONN || errno == unix.ECANCELED || errno == unix.ECONNABORTED {
					live-- // the connection is ending
					continue
				}
				// The kernel gave the entry back on a live connection
				// (e.g. a commit it did not recognise). Register it
				// again once; a queue left without entries would
				// strand the requests of its CPU.
				freeMem = false
				if !e.reregistered {
					log.Warn("fuseuring: ring entry ended; registering it again", "entry", e.idx, "err", errno)
					e.reregistered = true
					q.register(r, e)
					continue
				}
				log.Error("fuseuring: ring entry lost", "entry", e.idx, "err", errno)
				live--
				if live == 0 {
					lost = true
					stopped = "every ring entry lost: " + errno.Error()
					return
				}
				continue
			}
			e.reregistered = false
			if q.async((*fuse.InHeader)(unsafe.Pointer(&e.hdr.InOut[0])).Opcode) {
				go func() {
					q.process(e)
					q.completed <- e
					q.t.wake(q)
				}()
				spawned = true
				continue
			}
			q.process(e)
			q.commit(r, e)
		}
	}
	log.Debug("fuseuring: queue done (connection ended)")
}

// register queues the FUSE_IO_URING_CMD_REGISTER of e's buffers.
func (q *queue) register(r *ring, e *entry) {
	s := r.getSQE()
	s.Opcode = opURingCmd
	s.Fd = int32(q.devFD)
	s.Off = uringCmdRegister
	s.Addr = uint64(uintptr(unsafe.Pointer(&e.iov[0])))
	s.Len = 2
	s.UserData = uint64(e.idx)
	*(*cmdReq)(unsafe.Pointer(&s.Cmd[0])) = cmdReq{QID: uint16(q.qid)}
	if q.qid == q.t.cfg.failQID {
		s.Len = 1 // the kernel refuses it (EINVAL): tests of a failed Start
	}
}

// async says whether a request with this opcode goes to a goroutine.
func (q *queue) async(op uint32) bool {
	if op < fuseabi.NumOpcodes && q.t.cfg.async[op] {
		return true
	}
	return q.t.cfg.asyncIf != nil && q.t.cfg.asyncIf(op)
}

// armWake queues an 8-byte read of the wake eventfd.
func (q *queue) armWake(r *ring) {
	s := r.getSQE()
	s.Opcode = uringOpRead
	s.Fd = int32(q.wakeFD)
	s.Addr = uint64(uintptr(unsafe.Pointer(&q.wakeBuf[0])))
	s.Len = 8
	s.UserData = wakeTag
}

// process serves the request in e and lays out its reply in e's buffers.
func (q *queue) process(e *entry) {
	h := e.hdr
	e.commitID = h.EntInOut.CommitID
	in := e.payload[:min(int(h.EntInOut.PayloadSz), len(e.payload))]
	opcode := (*fuse.InHeader)(unsafe.Pointer(&h.InOut[0])).Opcode
	n, st := q.t.h.serve(e, in)
	if st != fuse.OK {
		n = 0
		if st < 0 || st >= 512 {
			st = fuse.EIO
		}
		q.errs.Add(1)
	}
	clear(h.OpIn[:])
	out := (*fuse.OutHeader)(unsafe.Pointer(&h.InOut[0]))
	*out = fuse.OutHeader{Length: outHeaderSize + n, Status: -int32(st), Unique: e.commitID}
	h.EntInOut.PayloadSz = n
	q.reqs.Add(1)
	if opcode < fuseabi.NumOpcodes {
		q.ops[opcode].Add(1)
	}
}

// commit queues the COMMIT_AND_FETCH that sends e's reply and makes e
// available for the next request.
func (q *queue) commit(r *ring, e *entry) {
	s := r.getSQE()
	s.Opcode = opURingCmd
	s.Fd = int32(q.devFD)
	s.Off = uringCmdCommitAndFetch
	s.UserData = uint64(e.idx)
	*(*cmdReq)(unsafe.Pointer(&s.Cmd[0])) = cmdReq{CommitID: e.commitID, QID: uint16(q.qid)}
}
