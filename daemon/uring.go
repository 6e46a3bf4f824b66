package daemon

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gonydus/nydus/fuseuring"
	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// URingMode says whether the FUSE session is served over io_uring
// (Linux 6.14+, module parameter fuse.enable_uring=Y) or /dev/fuse alone.
type URingMode string

// io_uring modes (nydusd --fuse-io-uring).
const (
	URingAuto URingMode = "auto" // io_uring when the kernel offers it
	URingOn   URingMode = "on"   // io_uring or fail
	URingOff  URingMode = "off"  // /dev/fuse only (the default)
)

// ParseURingMode validates a --fuse-io-uring value ("" is off: io_uring
// is opt-in until the stranded-request stress test has a long record).
func ParseURingMode(s string) (URingMode, error) {
	switch m := URingMode(s); m {
	case URingAuto, URingOn, URingOff:
		return m, nil
	case "":
		return URingOff, nil
	}
	return "", fmt.Errorf("%w: io_uring mode %q is not auto, on or off", ErrInvalidInput, s)
}

// ringWanted decides whether the session is served over io_uring.
func (d *Daemon) ringWanted(serial bool) (bool, error) {
	mode := d.opts.URing
	if mode == "" {
		mode = URingOff
	}
	useRing := false
	if mode != URingOff && d.opts.Supervisor != "" {
		// A supervisor may hold the /dev/fuse descriptor across a crash
		// (failover): the kernel then keeps the connection, but the
		// requests on the dead daemon's rings are neither answered nor
		// resent to a successor, and their callers wait forever.
		if mode == URingOn {
			return false, fmt.Errorf("%w: --fuse-io-uring=on with --supervisor: requests on the rings would not survive a failover", ErrInvalidInput)
		}
		d.log.Info("FUSE over io_uring not used: a supervisor (failover) is configured")
		mode = URingOff
	}
	if mode != URingOff && !serial {
		err := fuseuring.Available()
		if err != nil && mode == URingOn {
			// Asked for explicitly: turn the kernel's switch on.
			if _, err = fuseuring.Enable(); err == nil {
				d.log.Info("turned on fuse.enable_uring for --fuse-io-uring=on")
				err = fuseuring.Available()
			}
		}
		switch {
		case err == nil:
			useRing = true
		case mode == URingOn:
			return false, fmt.Errorf("daemon: --fuse-io-uring=on: %w", err)
		default:
			d.log.Debug("FUSE over io_uring not used", "reason", err)
		}
	}
	return useRing, nil
}

// mountFUSE mounts rootNode at dir and starts serving it: over io_uring
// queues (one per CPU, each request served on the CPU that made it, with
// no wake-up of another CPU) when mode allows and the kernel offers it,
// else over /dev/fuse alone, whose descriptor the daemon then holds
// (mountOwnedFUSE).
func (d *Daemon) mountFUSE(dir string, rootNode fs.InodeEmbedder, opts *fs.Options, serial bool) (*fuse.Server, *fuseuring.Transport, error) {
	useRing, err := d.ringWanted(serial)
	if err != nil {
		return nil, nil, err
	}
	if !useRing {
		srv, err := d.mountOwnedFUSE(dir, rootNode, opts)
		return srv, nil, err
	}
	// io_uring: go-fuse mounts, and the daemon does not hold the
	// descriptor (no sendfd: the rings would not survive a takeover).
	opts.MountOptions.ExtraCapabilities |= fuse.CAP_OVER_IO_URING
	raw := d.newRaw(rootNode, opts)
	srv, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		return nil, nil, err
	}
	tr, err := fuseuring.Start(srv, raw, fuseuring.WithLogger(d.log), fuseuring.WithAsyncIf(d.offload))
	if err != nil {
		if d.opts.URing == URingOn {
			srv.Unmount()
			return nil, nil, fmt.Errorf("daemon: --fuse-io-uring=on: %w", err)
		}
		d.log.Warn("FUSE over io_uring failed to start; serving /dev/fuse only", "err", err)
		tr = nil
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		if tr != nil {
			tr.Close()
		}
		return nil, nil, err
	}
	if tr != nil {
		d.log.Info("serving FUSE over io_uring", "queues", len(tr.Stats().Queues))
	}
	return srv, tr, nil
}

// offload tells the io_uring queues which requests to hand to a goroutine
// instead of answering inline on the queue's thread. Inline is the fast
// path, but a request that waits on the network stalls every other
// request of its CPU meanwhile. Requests answered from memory (lookups,
// attributes, directories, links, xattrs) are always inline; the others
// (data reads, and the overlay's writes and copy-ups, which may read a
// lower file) are inline once no image's data can wait on the network:
// its blobs are local (localfs) or all in the local cache.
//
// A blocking lock (SETLKW) always goes to a goroutine: it may wait for an
// unlock that another process on the same CPU has yet to send.
func (d *Daemon) offload(op uint32) bool {
	const setlkw = 33
	switch {
	case op == setlkw:
		return true
	case fromMemory(op):
		return false
	}
	return !d.allLocal()
}

// fromMemory reports the FUSE opcodes answered from the bootstrap in
// memory (or, on the overlay, from the upper dir's metadata).
func fromMemory(op uint32) bool {
	switch op {
	case 1, // LOOKUP
		3,  // GETATTR
		5,  // READLINK
		17, // STATFS
		18, // RELEASE
		22, // GETXATTR
		23, // LISTXATTR
		25, // FLUSH
		27, // OPENDIR
		28, // READDIR
		29, // RELEASEDIR
		34, // ACCESS
		44: // READDIRPLUS
		return true
	}
	return false
}

// localData reports whether no read of m can wait on the network: its
// blobs come from a local directory, or every chunk is in the cache.
func localData(m *Mount) bool {
	if m.Config != nil && m.Config.Backend.Type == "localfs" {
		return true
	}
	return m.Storage.Metrics().Snapshot().DataAllReady
}

// localState caches whether every image's data is local: once true it
// stays true (cached chunks are not evicted) until a mount is added; while
// false it is rechecked at most every 100 ms.
type localState struct {
	all     atomic.Bool
	checked atomic.Int64 // unix nanoseconds of the last check
}

func (d *Daemon) allLocal() bool {
	if d.local.all.Load() {
		return true
	}
	now := time.Now().UnixNano()
	last := d.local.checked.Load()
	if now-last < int64(100*time.Millisecond) || !d.local.checked.CompareAndSwap(last, now) {
		return false
	}
	// Start and AddMount hold d.mu while requests may arrive: never wait.
	if !d.mu.TryLock() {
		return false
	}
	defer d.mu.Unlock()
	if len(d.mounts) == 0 {
		return false
	}
	for _, m := range d.mounts {
		if !localData(m) {
			return false
		}
	}
	d.local.all.Store(true)
	return true
}

// URingStats reports what the io_uring queues served; ok is false when
// the session is served over /dev/fuse alone.
func (d *Daemon) URingStats() (s fuseuring.Stats, ok bool) {
	d.mu.Lock()
	ring := d.ring
	d.mu.Unlock()
	if ring == nil {
		return s, false
	}
	return ring.Stats(), true
}
