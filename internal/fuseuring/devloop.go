package fuseuring

// Serving a go-fuse mount from /dev/fuse on one goroutine, inline.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/fuseabi"
)

// DevLoop serves the requests of a go-fuse mount from a /dev/fuse
// descriptor of its own (a FUSE_DEV_IOC_CLONE of go-fuse's), in place of
// fuse.Server.Serve: one goroutine reads a request, calls the file system
// and writes the reply, then reads the next. go-fuse's loop starts a
// reader goroutine whenever none is waiting and keeps several threads
// blocked in read(2); each request then costs thread wake-ups and Go
// scheduler hand-offs, and with every P parked in a read the runtime's
// sysmon polls every 20 µs to take them back. One reader leaves the other
// Ps idle, so sysmon backs off, and a request costs one read and one
// writev. Operations that may block for long (WithAsyncOps, WithAsyncIf)
// still go to goroutines of their own.
//
// Once the connection ends (unmount, abort) the loop runs srv.Serve, which
// sees the end at once, closes go-fuse's descriptor and calls the file
// system's OnUnmount, so srv.Wait and srv.Unmount behave as with Serve.
// Only WithLogger, WithAsync, WithAsyncOps and WithAsyncIf apply; INTERRUPT
// is ignored (requests' cancel channels are never closed, as on a ring)
// and NOTIFY_REPLY is dropped, so Server.InodeRetrieveCache must not be
// used.
type DevLoop struct {
	srv         *fuse.Server
	h           *handler
	cfg         config
	fd          int
	setxattrExt bool
	bufSize     int // a request's read buffer: max_write and the largest header
	outSize     int // a reply's payload buffer
	pool        sync.Pool
	inflight    sync.WaitGroup // requests served by goroutines
	reqs        atomic.Uint64
	ops         [fuseabi.NumOpcodes]atomic.Uint64
	done        chan struct{}
}

// devReq is one request's buffers and decoding state.
type devReq struct {
	e   entry
	hdr reqHeader
	buf []byte // the request as read
	n   int
	out []byte // the reply's header and payload
}

// devMaxXattr is XATTR_SIZE_MAX: the largest value SETXATTR carries and
// GETXATTR returns.
const devMaxXattr = 64 << 10

// devDrainTimeout bounds how long the end of the loop waits for requests
// served by goroutines.
const devDrainTimeout = 5 * time.Second

// ServeDevice starts serving srv (just returned by fuse.NewServer, so
// INIT is answered; Serve not called) through rawFS, the file system srv
// serves, on a clone of srv's /dev/fuse descriptor. Call srv.WaitMount
// after it, as after `go srv.Serve()`. On error nothing was started and
// the caller can go on with srv.Serve (except on a connection that
// negotiated FUSE over io_uring, which ServeDevice refuses: only rings
// serve that one).
func ServeDevice(srv *fuse.Server, rawFS fuse.RawFileSystem, opts ...Option) (*DevLoop, error) {
	if srv == nil || rawFS == nil {
		return nil, errors.New("fuseuring: ServeDevice needs a fuse.Server and its RawFileSystem")
	}
	cfg := config{devFD: -1, logger: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	mo, err := serverOptions(srv)
	if err != nil {
		return nil, fmt.Errorf("fuseuring: %w", err)
	}
	neg, err := negotiatedFlags(srv)
	if err != nil {
		return nil, fmt.Errorf("fuseuring: %w", err)
	}
	if neg&fuse.CAP_OVER_IO_URING != 0 {
		// The kernel holds every request of such a connection until its
		// rings are registered: read from /dev/fuse, none would come.
		return nil, errors.New("fuseuring: the connection negotiated FUSE over io_uring, whose requests wait for rings: serve it with Start, or mount without fuse.CAP_OVER_IO_URING")
	}
	clone, err := deviceCloner(srv, cfg.devFD)
	if err != nil {
		return nil, err
	}
	fd, err := clone()
	if err != nil {
		return nil, err
	}
	h := &handler{fs: rawFS, cancel: make(chan struct{})}
	h.setOptions(mo)
	maxWrite := max(mo.MaxWrite, fuseMinReadBuffer)
	pageSize := os.Getpagesize()
	l := &DevLoop{srv: srv, h: h, cfg: cfg, fd: fd, setxattrExt: neg&fuse.CAP_SETXATTR_EXT != 0,
		bufSize: max(maxWrite, devMaxXattr) + pageSize, outSize: outHeaderSize + max(maxWrite, devMaxXattr), done: make(chan struct{})}
	go l.run()
	return l, nil
}

// Done is closed when the loop has ended (the connection ended) and
// srv.Serve has returned.
func (l *DevLoop) Done() <-chan struct{} { return l.done }

// Ops returns how many requests of each operation were served so far.
func (l *DevLoop) Ops() map[string]uint64 {
	m := map[string]uint64{}
	for op := range l.ops {
		if v := l.ops[op].Load(); v > 0 {
			m[fuseabi.OpName(uint32(op))] = v
		}
	}
	return m
}

// Requests returns how many requests were read so far.
func (l *DevLoop) Requests() uint64 { return l.reqs.Load() }

func (l *DevLoop) get() *devReq {
	if r, ok := l.pool.Get().(*devReq); ok {
		return r
	}
	r := &devReq{buf: make([]byte, l.bufSize), out: make([]byte, l.outSize)}
	r.e.hdr = &r.hdr
	r.e.payload = r.out[outHeaderSize:]
	return r
}

func (l *DevLoop) run() {
	defer close(l.done)
	r := l.get()
	for {
		n, err := unix.Read(l.fd, r.buf)
		switch {
		case err == nil:
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ENOENT):
			// ENOENT: the request was interrupted before it was read.
			continue
		case errors.Is(err, unix.ENODEV):
			l.finish()
			return
		default:
			l.cfg.logger.Error("fuseuring: reading /dev/fuse", "err", err)
			l.finish()
			return
		}
		if n < inHeaderSize {
			l.cfg.logger.Error("fuseuring: short request from /dev/fuse", "bytes", n)
			continue
		}
		r.n = n
		l.reqs.Add(1)
		op := (*fuse.InHeader)(unsafe.Pointer(&r.buf[0])).Opcode
		if op < fuseabi.NumOpcodes {
			l.ops[op].Add(1)
		}
		if l.async(op) {
			l.inflight.Add(1)
			go func(r *devReq) {
				defer l.inflight.Done()
				l.serve(r)
				l.pool.Put(r)
			}(r)
			r = l.get()
			continue
		}
		l.serve(r)
	}
}

// finish closes the loop's descriptor (once no goroutine can still write
// a reply to it; one stuck for long keeps it open) and lets go-fuse wind
// down: its Serve reads the ended connection once and returns.
func (l *DevLoop) finish() {
	idle := make(chan struct{})
	go func() { l.inflight.Wait(); close(idle) }()
	select {
	case <-idle:
		unix.Close(l.fd)
	case <-time.After(devDrainTimeout):
		l.cfg.logger.Warn("fuseuring: requests still being served after the connection ended; their descriptor stays open")
	}
	l.srv.Serve()
	l.cfg.logger.Debug("fuseuring: /dev/fuse loop done", "requests", l.reqs.Load())
}

// async says whether a request with this opcode goes to a goroutine.
func (l *DevLoop) async(op uint32) bool {
	if op < fuseabi.NumOpcodes && l.cfg.async[op] {
		return true
	}
	return l.cfg.asyncIf != nil && l.cfg.asyncIf(op)
}

// serve answers the request in r (if it takes an answer).
func (l *DevLoop) serve(r *devReq) {
	in := r.buf[:r.n]
	hdr := (*fuse.InHeader)(unsafe.Pointer(&in[0]))
	op, unique := hdr.Opcode, hdr.Unique
	size := devOpInSize(op, l.setxattrExt)
	switch op {
	case fuseabi.OpForget:
		if len(in) >= inHeaderSize+size {
			fin := (*fuse.ForgetIn)(unsafe.Pointer(&in[0]))
			l.forget(hdr.NodeId, fin.Nlookup)
		}
		return
	case fuseabi.OpBatchForget:
		l.batchForget(in[inHeaderSize:])
		return
	case fuseabi.OpInterrupt, fuseabi.OpNotifyReply:
		return
	}
	var n uint32
	st := fuse.EINVAL
	if len(in) >= inHeaderSize+size {
		copy(r.hdr.InOut[:inHeaderSize], in[:inHeaderSize])
		clear(r.hdr.OpIn[:])
		copy(r.hdr.OpIn[:], in[inHeaderSize:inHeaderSize+size])
		n, st = l.h.serve(&r.e, in[inHeaderSize+size:])
	}
	if st != fuse.OK {
		n = 0
		if st < 0 || st >= 512 {
			st = fuse.EIO
		}
	}
	*(*fuse.OutHeader)(unsafe.Pointer(&r.out[0])) = fuse.OutHeader{Length: outHeaderSize + n, Status: -int32(st), Unique: unique}
	for {
		_, err := unix.Write(l.fd, r.out[:outHeaderSize+n])
		if !errors.Is(err, unix.EINTR) {
			// ENOENT: the request was interrupted meanwhile; ENODEV:
			// the connection ended. Neither wants the reply.
			return
		}
	}
}

// batchForget forgets the nodes of a BATCH_FORGET (count, dummy, then
// count node id and lookup count pairs).
func (l *DevLoop) batchForget(b []byte) {
	if len(b) < 8 {
		return
	}
	count := int(*(*uint32)(unsafe.Pointer(&b[0])))
	b = b[8:]
	for i := 0; i < count && len(b) >= 16; i++ {
		node := *(*uint64)(unsafe.Pointer(&b[0]))
		nlookup := *(*uint64)(unsafe.Pointer(&b[8]))
		l.forget(node, nlookup)
		b = b[16:]
	}
}

// forget passes a FORGET on to the file system, except the one of
// go-fuse's poll-hack node (the entry pollHack answered at mount, which
// the file system never saw: go-fuse's bridge panics on a node it does
// not know, and the kernel forgets that entry whenever its dentry goes,
// e.g. under memory pressure). A FORGET has no reply, so a panic in the
// file system is logged, not answered.
func (l *DevLoop) forget(node, nlookup uint64) {
	if node == pollHackInode {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			l.cfg.logger.Error("fuseuring: panic in FORGET", "node", node, "panic", p)
		}
	}()
	l.h.fs.Forget(node, nlookup)
}
