// Package fuseuring serves the requests of a go-fuse mount over FUSE's
// io_uring transport (Linux 6.14+, CONFIG_FUSE_IO_URING, module parameter
// fuse.enable_uring=Y), next to go-fuse's own /dev/fuse reader loop.
//
// With io_uring the kernel queues each request on the ring of the CPU the
// calling task runs on. Start runs one queue per possible CPU: a goroutine
// locked to an OS thread pinned to that CPU, with a few ring entries, that
// waits for requests, calls the fuse.RawFileSystem inline and sends the
// reply together with the request for the next entry in one
// io_uring_enter. There is no hand-off to another thread and no
// cross-CPU wake-up.
//
// go-fuse keeps serving what the kernel still sends on /dev/fuse: INIT,
// FORGET and BATCH_FORGET, INTERRUPT, and notifications. INTERRUPTs thus
// never reach requests served here: their cancel channel is never closed.
//
// Use:
//
//	opts.MountOptions.ExtraCapabilities |= fuse.CAP_OVER_IO_URING
//	raw := fs.NewNodeFS(root, opts)
//	srv, err := fuse.NewServer(raw, dir, &opts.MountOptions) // answers INIT
//	tr, err := fuseuring.Start(srv, raw)                     // before Serve/WaitMount
//	go srv.Serve()
//	err = srv.WaitMount()
//	...
//	srv.Unmount(); tr.Close()
//
// Once INIT negotiated FUSE_OVER_IO_URING the kernel holds back every new
// request until all queues are registered, so Start must follow NewServer
// promptly and come before WaitMount (whose probe of go-fuse's
// ".go-fuse-epoll-hack" file is answered here as go-fuse would). If Start
// fails, it first makes the kernel turn io_uring off for the connection
// (a failed registration does that), so /dev/fuse serves everything and
// the caller can go on with Serve; queues that did register keep serving
// until the connection ends, in case the kernel switched to the rings
// before the failure.
//
// No request is ever left on a ring nobody serves. Once the rings are in
// use the kernel never hands requests back to /dev/fuse, so a queue
// never stops while the connection lives: the queues end by themselves
// when the connection ends (unmount, or the last open file of a lazily
// unmounted mount closed; see Done). Close on a live connection, and a
// queue thread that dies (an io_uring_enter error, a panic outside the
// file system's handlers), abort the connection through fusectl
// (mounting it on /sys/fs/fuse/connections if needed), which ends every
// request it holds with an error. If the process dies, the kernel aborts
// the connection itself once the last /dev/fuse descriptor is closed.
//
// Inline serving is the fast path, but a request that blocks (a read
// that waits on the network, a lock wait) holds up every other request
// of its CPU. WithAsyncOps and WithAsyncIf hand such requests to
// goroutines, at the cost of Go scheduler hand-offs (about 35 µs more per
// request on a 2-vCPU VM; inline is about 13 µs less than /dev/fuse).
//
// Requests call the RawFileSystem as go-fuse's own server does, honouring
// MountOptions.DisableXAttrs, IgnoreSecurityLabels, SingleThreaded and
// PanicHandler (read from the fuse.Server). IOCTL, POLL, BMAP, SYNCFS,
// COPY_FILE_RANGE_64 and NOTIFY_REPLY (answers to
// Server.InodeRetrieveCache, which therefore must not be used with the
// rings) get ENOSYS. Every request gets a reply: a panic in the file
// system becomes EIO.
package fuseuring

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/fuseabi"
)

// ErrUnavailable is wrapped by the errors of Available and Start when the
// kernel cannot serve FUSE over io_uring.
var ErrUnavailable = errors.New("FUSE over io_uring unavailable")

const enableURingParam = "/sys/module/fuse/parameters/enable_uring"

// Enable turns the fuse module's enable_uring parameter on (root only), so
// that mounts made from now on may negotiate io_uring. It changes the
// setting for every FUSE server on the machine; servers that do not ask for
// io_uring at INIT are unaffected. restore puts the old value back (it does
// nothing when the parameter was already on).
func Enable() (restore func() error, err error) {
	old, err := os.ReadFile(enableURingParam)
	if err != nil {
		return nil, fmt.Errorf("%w: kernel without CONFIG_FUSE_IO_URING? %w", ErrUnavailable, err)
	}
	if strings.TrimSpace(string(old)) == "Y" {
		return func() error { return nil }, nil
	}
	if err := os.WriteFile(enableURingParam, []byte("Y"), 0o644); err != nil {
		return nil, fmt.Errorf("%w: turn on %s: %w", ErrUnavailable, enableURingParam, err)
	}
	return func() error { return os.WriteFile(enableURingParam, old, 0o644) }, nil
}

// Available reports whether this kernel can serve FUSE over io_uring now:
// the fuse module has enable_uring=Y and io_uring_setup accepts an
// SQE128 ring. Mounts made while it was N can't use io_uring.
func Available() error {
	b, err := os.ReadFile(enableURingParam)
	if err != nil {
		return fmt.Errorf("%w: kernel without CONFIG_FUSE_IO_URING? %w", ErrUnavailable, err)
	}
	if v := strings.TrimSpace(string(b)); v != "Y" {
		return fmt.Errorf("%w: %s is %q (echo Y > %s)", ErrUnavailable, enableURingParam, v, enableURingParam)
	}
	r, err := newRing(4)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	r.close()
	return nil
}

type config struct {
	entries      int
	payloadSize  int
	devFD        int
	logger       *slog.Logger
	startTimeout time.Duration
	pin          bool
	async        [fuseabi.NumOpcodes]bool // opcodes handed to goroutines
	asyncIf      func(opcode uint32) bool
	conn         int // FUSE connection id, -1 to find it
	failQID      int // tests: this queue's registration fails (-1: none)
}

// Option configures Start.
type Option func(*config) error

// WithEntries sets the ring entries per queue (1..64, default 2). Each
// entry can hold one request; each queue serves its entries one after the
// other on one thread.
func WithEntries(n int) Option {
	return func(c *config) error {
		if n < 1 || n > 64 {
			return fmt.Errorf("fuseuring: entries per queue %d not in 1..64", n)
		}
		c.entries = n
		return nil
	}
}

// WithMaxWrite sets the payload buffer size of every entry. It must be at
// least the mount's MountOptions.MaxWrite rounded up to pages (the kernel
// rejects smaller buffers). The default, 1 MiB, fits any go-fuse mount.
func WithMaxWrite(n int) Option {
	return func(c *config) error {
		if n < fuseMinReadBuffer || n > 16<<20 {
			return fmt.Errorf("fuseuring: max write %d not in %d..%d", n, fuseMinReadBuffer, 16<<20)
		}
		c.payloadSize = (n + os.Getpagesize() - 1) &^ (os.Getpagesize() - 1)
		return nil
	}
}

// WithDeviceFD names the mount's /dev/fuse file descriptor. Without it,
// Start finds go-fuse's descriptor inside the fuse.Server, or else the only
// /dev/fuse descriptor of this process.
func WithDeviceFD(fd int) Option {
	return func(c *config) error {
		if fd < 0 {
			return fmt.Errorf("fuseuring: bad device fd %d", fd)
		}
		c.devFD = fd
		return nil
	}
}

// WithConnID names the mount's FUSE connection (its directory name in
// /sys/fs/fuse/connections: the mount's device number, major<<20|minor),
// which Close and a dying queue abort. Without it, Start finds it in
// /proc/self/mountinfo from go-fuse's mount point.
func WithConnID(id int) Option {
	return func(c *config) error {
		if id < 0 {
			return fmt.Errorf("fuseuring: bad connection id %d", id)
		}
		c.conn = id
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("fuseuring: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithStartTimeout bounds how long Start waits for the queues to register
// (default 10s).
func WithStartTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("fuseuring: start timeout %v", d)
		}
		c.startTimeout = d
		return nil
	}
}

// WithPinning sets whether each queue thread is pinned to its CPU
// (default true).
func WithPinning(pin bool) Option {
	return func(c *config) error {
		c.pin = pin
		return nil
	}
}

// WithAsync makes each queue hand every request to a goroutine of its
// own instead of serving it on the queue thread (default false); see
// WithAsyncOps, which does it for some operations only.
func WithAsync(async bool) Option {
	return func(c *config) error {
		for op := range c.async {
			c.async[op] = async
		}
		return nil
	}
}

// WithAsyncOps hands requests of the named operations ("READ", "SETLKW",
// names as in QueueStats.Ops) to goroutines; the rest are served inline.
// Inline, a request that blocks for long (a read that fetches from the
// network, a lock wait) stalls every other request of that CPU; a
// goroutine avoids that at a price: about 35 µs more per request on a
// 2-vCPU VM, as the goroutine and the reply's return to the queue thread
// take Go scheduler hand-offs. Pair it with more entries (WithEntries),
// which bound the requests in flight per CPU.
func WithAsyncOps(names ...string) Option {
	return func(c *config) error {
		for _, name := range names {
			op, ok := fuseabi.OpByName(name)
			if !ok {
				return fmt.Errorf("fuseuring: unknown operation %q", name)
			}
			c.async[op] = true
		}
		return nil
	}
}

// WithAsyncIf hands a request to a goroutine when pred(opcode) is true,
// opcode being the FUSE wire opcode (fuseabi.OpLookup, fuseabi.OpRead,
// ...), in addition to WithAsync/WithAsyncOps. pred runs on the
// queue thread for every request, so it must be quick and never block;
// it may change its answer over time (e.g. inline once data is local).
func WithAsyncIf(pred func(opcode uint32) bool) Option {
	return func(c *config) error {
		if pred == nil {
			return errors.New("fuseuring: nil WithAsyncIf predicate")
		}
		c.asyncIf = pred
		return nil
	}
}

// QueueStats counts what one queue served.
type QueueStats struct {
	QID      int
	Requests uint64 // requests answered
	Errors   uint64 // of which with an error status
	Ops      map[string]uint64
}

// Stats is a snapshot of a Transport's counters.
type Stats struct {
	Queues   []QueueStats
	Requests uint64
}

// Transport serves a mount's requests over io_uring queues.
type Transport struct {
	h    *handler
	cfg  config
	log  *slog.Logger
	conn int // FUSE connection id, -1 if unknown
	// probeFD is a /dev/fuse descriptor of the connection that is never
	// read: it reports whether the connection still lives (connected),
	// so that an id freed by the connection's end, maybe reused by
	// another mount since, is never aborted.
	probeFD   int
	queues    []*queue
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	abortOnce sync.Once
	abortErr  error
	wakeMu    sync.Mutex // guards the queues' wakeFD and probeFD against closeWakeFDs
}

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

// Start registers io_uring queues for the mount served by srv (after
// fuse.NewServer returned, i.e. after INIT) and serves rawFS through them
// until the connection ends or Close is called. rawFS is the file system
// srv serves, e.g. the value of fs.NewNodeFS.
func Start(srv *fuse.Server, rawFS fuse.RawFileSystem, opts ...Option) (*Transport, error) {
	if rawFS == nil {
		return nil, errors.New("fuseuring: nil RawFileSystem")
	}
	cfg := config{entries: 2, devFD: -1, logger: slog.Default(), startTimeout: 10 * time.Second, pin: true, conn: -1, failQID: -1}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	h := &handler{fs: rawFS, cancel: make(chan struct{})}
	pageSize := os.Getpagesize()
	auto := maxKernelWrite
	if srv != nil {
		if ks := srv.KernelSettings(); ks.Flags64()&fuse.CAP_OVER_IO_URING == 0 {
			return nil, fmt.Errorf("%w: the kernel did not offer FUSE_OVER_IO_URING at INIT (enable_uring was not Y at mount time, or protocol %d.%d too old)", ErrUnavailable, ks.Major, ks.Minor)
		}
		neg, negErr := negotiatedFlags(srv)
		if negErr == nil && neg&fuse.CAP_OVER_IO_URING == 0 {
			return nil, fmt.Errorf("%w: the INIT reply lacked FUSE_OVER_IO_URING: add fuse.CAP_OVER_IO_URING to MountOptions.ExtraCapabilities", ErrUnavailable)
		}
		if mo, err := serverOptions(srv); err == nil {
			h.noXattr = mo.DisableXAttrs
			h.ignoreSecurityLabels = mo.IgnoreSecurityLabels
			h.panicHandler = mo.PanicHandler
			h.singleThreaded = mo.SingleThreaded
			if mo.MaxWrite > 0 {
				// The kernel wants max(FUSE_MIN_READ_BUFFER, max_write,
				// max_pages*PAGE_SIZE); go-fuse asks for max_pages =
				// max_write in pages, else the kernel keeps 32.
				pages := (mo.MaxWrite + pageSize - 1) / pageSize
				if negErr != nil {
					pages = max(pages, 32)
				} else if neg&fuse.CAP_MAX_PAGES == 0 {
					pages = 32
				}
				auto = max(fuseMinReadBuffer, mo.MaxWrite, pages*pageSize)
			}
		}
	}
	if cfg.payloadSize == 0 {
		cfg.payloadSize = (auto + pageSize - 1) &^ (pageSize - 1)
	}
	clone, err := deviceCloner(srv, cfg.devFD)
	if err != nil {
		return nil, err
	}
	n, err := possibleCPUs()
	if err != nil {
		turnOffURing(clone, cfg.logger)
		return nil, err
	}
	conn := cfg.conn
	if conn < 0 {
		if conn, err = serverConnID(srv); err != nil {
			cfg.logger.Warn("fuseuring: FUSE connection not found; Close and a dying queue cannot abort it (use WithConnID)", "err", err)
			conn = -1
		}
	}
	t := &Transport{h: h, cfg: cfg, log: cfg.logger, conn: conn, probeFD: -1, done: make(chan struct{})}
	if t.probeFD, err = clone(); err != nil {
		turnOffURing(clone, cfg.logger)
		return nil, err
	}
	ready := make(chan error, n)
	for qid := range n {
		q, err := t.newQueue(qid, clone)
		if err != nil {
			t.abortStart()
			turnOffURing(clone, cfg.logger)
			return nil, err
		}
		t.queues = append(t.queues, q)
	}
	for _, q := range t.queues {
		go q.run(ready)
	}
	go func() {
		for _, q := range t.queues {
			<-q.done
		}
		t.closeWakeFDs()
		close(t.done)
	}()
	// On failure the queues are left alone: those that registered keep
	// serving until the connection ends (if the kernel switched to the
	// rings before a later registration failed, only they can answer),
	// the others have ended.
	timer := time.NewTimer(cfg.startTimeout)
	defer timer.Stop()
	for range t.queues {
		select {
		case err := <-ready:
			if err != nil {
				turnOffURing(clone, cfg.logger)
				return nil, err
			}
		case <-timer.C:
			turnOffURing(clone, cfg.logger)
			return nil, fmt.Errorf("fuseuring: queues not registered within %v", cfg.startTimeout)
		}
	}
	t.log.Debug("fuseuring: serving", "queues", n, "entries", cfg.entries, "payload", cfg.payloadSize)
	return t, nil
}

// turnOffURing makes the kernel give up on io_uring for the connection,
// so that requests it holds back flow to /dev/fuse again: any failed
// FUSE_IO_URING_CMD_REGISTER does that, here one with an impossible queue
// id. It is a no-op if the rings were complete already.
func turnOffURing(clone func() (int, error), log *slog.Logger) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	fd, err := clone()
	if err != nil {
		log.Warn("fuseuring: cannot hand the connection back to /dev/fuse", "err", err)
		return
	}
	defer unix.Close(fd)
	r, err := newRing(2)
	if err != nil {
		log.Warn("fuseuring: cannot hand the connection back to /dev/fuse", "err", err)
		return
	}
	defer r.close()
	var iov [2]iovec
	s := r.getSQE()
	s.Opcode = opURingCmd
	s.Fd = int32(fd)
	s.Off = uringCmdRegister
	s.Addr = uint64(uintptr(unsafe.Pointer(&iov[0])))
	s.Len = 2
	*(*cmdReq)(unsafe.Pointer(&s.Cmd[0])) = cmdReq{QID: 0xffff}
	if err := r.submitAndWait(1); err != nil {
		log.Warn("fuseuring: cannot hand the connection back to /dev/fuse", "err", err)
		return
	}
	c, _ := r.peekCQE()
	runtime.KeepAlive(&iov)
	log.Debug("fuseuring: io_uring turned off for the connection", "register", syscall.Errno(-c.Res))
}

// abortStart releases queues that were set up but never run.
func (t *Transport) abortStart() {
	for _, q := range t.queues {
		q.release(true)
	}
	t.closeWakeFDs()
	t.queues = nil
	close(t.done)
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
func (q *queue) run(ready chan<- error) {
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

// wake makes the queue thread look at its completions (and the test
// hook's die flag).
func (t *Transport) wake(q *queue) {
	one := []byte{1, 0, 0, 0, 0, 0, 0, 0}
	t.wakeMu.Lock()
	if q.wakeFD >= 0 {
		unix.Write(q.wakeFD, one)
	}
	t.wakeMu.Unlock()
}

// Close ends the transport. After an unmount the queues have ended (or
// are ending) with the connection, and Close just waits for them. If the
// connection still lives (a lazy unmount with files still open, or no
// unmount at all), Close aborts it, as the kernel cannot hand its
// requests back to /dev/fuse: every request waiting on it ends with an
// error, and later ones fail with ENOTCONN. If it cannot abort the
// connection (fusectl unavailable, connection unknown), the queues go on
// serving until the connection ends and Close says so. Close waits at
// most 10s; it is safe to call more than once.
func (t *Transport) Close() error {
	t.closeOnce.Do(func() { t.closeErr = t.close() })
	return t.closeErr
}

func (t *Transport) close() error {
	select {
	case <-t.done:
		return nil
	default:
	}
	if t.connected() {
		if err := t.abortConn(); err != nil {
			// Stopping now would strand requests: keep serving.
			return fmt.Errorf("fuseuring: queues keep serving until the connection ends: %w", err)
		}
	}
	select {
	case <-t.done:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("fuseuring: queues did not end within 10s of the connection's end (a file system call that never returns?)")
	}
}

// connected reports whether the connection still lives: /dev/fuse polls
// as an error once it is aborted or unmounted.
func (t *Transport) connected() bool {
	t.wakeMu.Lock()
	defer t.wakeMu.Unlock()
	if t.probeFD < 0 {
		return false // every queue has ended with the connection
	}
	fds := []unix.PollFd{{Fd: int32(t.probeFD), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && fds[0].Revents&(unix.POLLERR|unix.POLLNVAL) == 0
	}
}

// abortConn aborts the transport's FUSE connection (once) if it still
// lives.
func (t *Transport) abortConn() error {
	t.abortOnce.Do(func() {
		if !t.connected() {
			return
		}
		if t.conn < 0 {
			t.abortErr = errors.New("fuseuring: FUSE connection unknown (see WithConnID)")
			return
		}
		t.abortErr = AbortConn(t.conn)
		if t.abortErr == nil {
			t.log.Info("fuseuring: aborted FUSE connection", "conn", t.conn)
		}
	})
	return t.abortErr
}

// ConnID returns the FUSE connection id the transport serves (its
// directory in /sys/fs/fuse/connections), or -1 if unknown.
func (t *Transport) ConnID() int { return t.conn }

func (t *Transport) closeWakeFDs() {
	t.wakeMu.Lock()
	defer t.wakeMu.Unlock()
	if t.probeFD >= 0 {
		unix.Close(t.probeFD)
		t.probeFD = -1
	}
	for _, q := range t.queues {
		if q.wakeFD >= 0 {
			unix.Close(q.wakeFD)
			q.wakeFD = -1
		}
	}
}

// Done is closed when every queue has ended (connection gone, or Close).
func (t *Transport) Done() <-chan struct{} { return t.done }

// Stats returns per-queue request counts.
func (t *Transport) Stats() Stats {
	var s Stats
	for _, q := range t.queues {
		qs := QueueStats{QID: q.qid, Requests: q.reqs.Load(), Errors: q.errs.Load(), Ops: map[string]uint64{}}
		for op := range q.ops {
			if v := q.ops[op].Load(); v > 0 {
				qs.Ops[fuseabi.OpName(uint32(op))] = v
			}
		}
		s.Requests += qs.Requests
		s.Queues = append(s.Queues, qs)
	}
	return s
}

// possibleCPUs is the kernel's number of ring queues (num_possible_cpus,
// CPU ids being contiguous from 0).
func possibleCPUs() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, fmt.Errorf("fuseuring: %w", err)
	}
	maxID := -1
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		_, hi, _ := strings.Cut(part, "-")
		if hi == "" {
			hi = part
		}
		v, err := strconv.Atoi(hi)
		if err != nil {
			return 0, fmt.Errorf("fuseuring: parse /sys/devices/system/cpu/possible %q: %w", b, err)
		}
		maxID = max(maxID, v)
	}
	if maxID < 0 {
		return 0, fmt.Errorf("fuseuring: no CPUs in /sys/devices/system/cpu/possible")
	}
	return maxID + 1, nil
}
