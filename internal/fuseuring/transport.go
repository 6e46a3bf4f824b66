package fuseuring

// The Transport: starting the queues of a mount, and ending them.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

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
	if err := checkGoFuseLayout(); err != nil {
		cfg.logger.Warn("fuseuring: go-fuse's unexported fields are not those this package was checked against (see its doc); what cannot be read falls back", "err", err)
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
			h.setOptions(mo)
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
