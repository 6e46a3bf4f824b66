package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/daemon/rafsfs"
	"github.com/gonydus/nydus/internal/fuseuring"
	"github.com/gonydus/nydus/overlay"
	"github.com/gonydus/nydus/storage/prefetch"
)

// State is the daemon state upstream reports.
type State string

// Daemon states.
const (
	StateInit    State = "INIT"
	StateReady   State = "READY"
	StateRunning State = "RUNNING"
	StateStopped State = "STOPPED"
)

// Errors the API maps to HTTP statuses.
var (
	ErrNotFound     = errors.New("daemon: no such mount")
	ErrExists       = errors.New("daemon: mountpoint already in use")
	ErrNotReady     = errors.New("daemon: not ready")
	ErrUnsupported  = errors.New("daemon: unsupported")
	ErrInvalidInput = errors.New("daemon: invalid input")
)

// Event is one entry of /api/v1/daemon/events.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

// Options configure a daemon.
type Options struct {
	ID, Supervisor string
	Version        string
	Backends       BackendOpener
	Logger         *slog.Logger
	FsName         string
	// Writable mounts a root image that has an overlay configuration
	// read-write (nydusd --writable); without it the overlay is read-only.
	Writable bool
	// URing chooses FUSE over io_uring (default URingOff).
	URing URingMode
	// FailoverPolicy is what a successor does about the requests this
	// daemon read and did not answer: FailoverResend (the default),
	// FailoverFlush or FailoverNone (--failover-policy).
	FailoverPolicy string
}

// Daemon serves RAFS mounts over one FUSE session.
type Daemon struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	state   State
	mounts  map[string]*Mount
	nextIdx uint64          // where the search for a free inode index starts
	idxUsed map[uint64]bool // inode indexes (st_ino's top byte) of mounts
	events  []Event
	pseudo  *rafsfs.PseudoRoot // the root when it is no image
	server  *fuse.Server
	mntDir  string
	direct  *Mount // a mount serving the FUSE root itself
	noOpen  bool   // the kernel supports zero-message open
	serial  bool   // requests are handled one at a time (--thread-num 1)
	ring    *fuseuring.Transport
	raw     *rafsfs.RawFS // counts requests; set by Start
	local   localState

	// The FUSE session's descriptor, when the daemon mounted /dev/fuse
	// itself (-1 otherwise), the INIT the kernel sent on it and the
	// answer it got: what a supervisor keeps and a successor restores.
	fuseFd          int
	initIn, initOut []byte
	threads         int
	serving         bool          // the server reads requests
	done            chan struct{} // closed when the session's server ended

	// The writable overlay's handover (handover.go): the daemon's
	// generation in the session, and the node journal.
	ovGen    uint64
	nodes    *nodeTable
	handover *handoverFS
}

// tune applies what the kernel negotiated to a mount's filesystem.
func (d *Daemon) tune(m *Mount) {
	if d.noOpen {
		m.FS.EnableNoOpen()
	}
	// A push waits for page locks a concurrent READ of the same pages
	// holds. With requests handled one at a time, or inline on a CPU's
	// io_uring queue (where that READ may wait behind the push), it would
	// never be answered. Over io_uring a READ is cheap enough without.
	if d.serial || d.ring != nil {
		m.FS.DisableTailPush()
	}
}

// New returns a daemon in state INIT.
func New(opts Options) *Daemon {
	if opts.Backends == nil {
		opts.Backends = OpenBackend
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FsName == "" {
		opts.FsName = "nydusfs"
	}
	if opts.FailoverPolicy == "" {
		opts.FailoverPolicy = FailoverResend
	}
	return &Daemon{opts: opts, log: opts.Logger, state: StateInit, mounts: map[string]*Mount{}, nextIdx: 1, idxUsed: map[uint64]bool{},
		fuseFd: -1, done: make(chan struct{})}
}

func (d *Daemon) event(kind, format string, a ...any) {
	d.events = append(d.events, Event{Time: time.Now(), Kind: kind, Message: fmt.Sprintf(format, a...)})
	if len(d.events) > 1000 {
		d.events = d.events[len(d.events)-1000:]
	}
}

// State returns the current state.
func (d *Daemon) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state
}

// Events returns the recorded events.
func (d *Daemon) Events() []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Event(nil), d.events...)
}

// Mounts returns the current mounts.
func (d *Daemon) Mounts() map[string]*Mount {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]*Mount, len(d.mounts))
	for k, v := range d.mounts {
		out[k] = v
	}
	return out
}

// Mount returns the mount at mountpoint.
func (d *Daemon) Mount(mountpoint string) (*Mount, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m, ok := d.mounts[cleanMountpoint(mountpoint)]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, mountpoint)
	}
	return m, nil
}

func cleanMountpoint(p string) string { return path.Clean("/" + p) }

// Start serves the FUSE session at dir. With a bootstrap for "/" given
// before Start (AddMount), the image is the root of the mount; otherwise a
// pseudo directory is, and mounts appear as its sub-directories.
func (d *Daemon) Start(dir string, mountOpts []string, threads int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.server != nil {
		return fmt.Errorf("%w: already serving %s", ErrExists, d.mntDir)
	}
	rootNode, opts, err := d.session(mountOpts, threads)
	if err != nil {
		return err
	}
	srv, ring, err := d.mountFUSE(dir, rootNode, opts, d.serial)
	if err != nil {
		d.pseudo = nil
		return fmt.Errorf("daemon: mount FUSE at %s: %w", dir, err)
	}
	d.server, d.ring, d.mntDir = srv, ring, dir
	d.serving = true
	go func() { srv.Wait(); close(d.done) }()
	d.tuneAll()
	d.state = StateRunning
	d.event("state", "mounted FUSE at %s, RUNNING", dir)
	return nil
}

// session decides how the mounts are served: the root image, its
// writable overlay, or a pseudo directory of images. d.mu is held.
func (d *Daemon) session(mountOpts []string, threads int) (fs.InodeEmbedder, *fs.Options, error) {
	opts := rafsfs.MountOptions(d.opts.FsName)
	opts.MountOptions.Options = append(opts.MountOptions.Options, mountOpts...)
	d.threads = threads
	if threads == 1 {
		opts.SingleThreaded = true
		d.serial = true
	}
	var rootNode fs.InodeEmbedder
	if m, ok := d.mounts["/"]; ok && m.Overlay != nil {
		d.direct = m
		threaded := opts.SingleThreaded
		opts = overlay.MountOptions(d.opts.FsName)
		opts.SingleThreaded = threaded
		opts.MountOptions.Options = append(opts.MountOptions.Options, mountOpts...)
		if !d.opts.Writable {
			opts.MountOptions.Options = append(opts.MountOptions.Options, "ro")
		}
		rootNode = m.Overlay.Root()
		opts.RootStableAttr = m.Overlay.RootStableAttr()
		if d.opts.Supervisor != "" {
			// A successor could not resolve the node IDs of a
			// READDIRPLUS listing (handover.go).
			opts.MountOptions.DisableReadDirPlus = true
		}
	} else if ok {
		d.direct = m
		rootNode = m.FS.Root()
		opts.RootStableAttr = m.FS.RootStableAttr()
	} else {
		// Mounts added before Start are served from the first request.
		d.pseudo = rafsfs.NewPseudoRoot()
		for mp, m := range d.mounts {
			if err := d.pseudo.Add(strings.TrimPrefix(mp, "/"), m.FS); err != nil {
				d.pseudo = nil
				return nil, nil, fmt.Errorf("daemon: %w", err)
			}
		}
	}
	return rootNode, opts, nil
}

// tuneAll applies what the kernel negotiated to every mount; d.mu is
// held.
func (d *Daemon) tuneAll() {
	d.noOpen = d.server.KernelSettings().Flags64()&fuse.CAP_NO_OPEN_SUPPORT != 0
	for _, m := range d.mounts {
		d.tune(m)
	}
}

// AddMount mounts bootstrap at mountpoint ("/" or "/name") with cfg and
// starts its mount-time prefetch when enabled; prefetchFiles (nil for the
// image's prefetch table) lists absolute paths to prefetch. Mounting the
// same bootstrap with the same configuration again at a mountpoint
// succeeds and changes nothing.
func (d *Daemon) AddMount(mountpoint, bootstrap string, cfg *config.Config, prefetchFiles ...string) error {
	mp := cleanMountpoint(mountpoint)
	if mp != "/" && strings.Count(mp, "/") != 1 {
		return fmt.Errorf("%w: mountpoint %q must be / or a single /name", ErrInvalidInput, mountpoint)
	}
	d.mu.Lock()
	if m, ok := d.mounts[mp]; ok {
		d.mu.Unlock()
		if sameMount(m, bootstrap, cfg) {
			// nydus-snapshotter mounts its images again on a daemon
			// that took them over in a live upgrade.
			return nil
		}
		return fmt.Errorf("%w: %s", ErrExists, mp)
	}
	if mp == "/" && d.server != nil {
		d.mu.Unlock()
		return fmt.Errorf("%w: / can only be mounted at startup", ErrUnsupported)
	}
	if d.direct != nil {
		d.mu.Unlock()
		return fmt.Errorf("%w: the root is an image; pseudo-mounts need a daemon started without --bootstrap", ErrUnsupported)
	}
	if cfg != nil && cfg.Overlay != nil && mp != "/" {
		d.mu.Unlock()
		return fmt.Errorf("%w: the writable overlay serves the root image only (--bootstrap), not the pseudo-mount %s", ErrUnsupported, mp)
	}
	idx, err := d.takeIndex()
	d.mu.Unlock()
	if err != nil {
		return err
	}
	m, err := openMount(mp, bootstrap, cfg, d.opts.Backends, idx, d.log)
	if err != nil {
		d.mu.Lock()
		delete(d.idxUsed, idx)
		d.mu.Unlock()
		return err
	}
	m.idx = idx
	m.prefetchFiles = prefetchFiles
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.mounts[mp]; ok {
		delete(d.idxUsed, idx)
		m.Close()
		return fmt.Errorf("%w: %s", ErrExists, mp)
	}
	if d.pseudo != nil {
		d.tune(m)
		if err := d.pseudo.Add(strings.TrimPrefix(mp, "/"), m.FS); err != nil {
			delete(d.idxUsed, idx)
			m.Close()
			return fmt.Errorf("daemon: %w", err)
		}
	}
	d.mounts[mp] = m
	d.local.all.Store(false)
	if d.state == StateInit {
		d.state = StateReady
	}
	d.startPrefetch(m, prefetchFiles)
	d.event("mount", "mounted %s at %s", bootstrap, mp)
	d.log.Info("mounted", "bootstrap", bootstrap, "mountpoint", mp, "inodes", m.Image.Inodes(), "blobs", len(m.Image.Blobs()))
	return nil
}

// sameMount reports whether m serves bootstrap with configuration cfg.
func sameMount(m *Mount, bootstrap string, cfg *config.Config) bool {
	if m.Source != bootstrap || cfg == nil {
		return false
	}
	a, errA := json.Marshal(m.Config)
	b, errB := json.Marshal(cfg)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

// RemoveMount unmounts mountpoint. Open files of the mount fail with EIO
// afterwards; the kernel forgets its entries.
func (d *Daemon) RemoveMount(mountpoint string) error {
	mp := cleanMountpoint(mountpoint)
	d.mu.Lock()
	m, ok := d.mounts[mp]
	if !ok {
		d.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotFound, mp)
	}
	if m == d.direct {
		d.mu.Unlock()
		return fmt.Errorf("%w: the root image is unmounted by stopping the daemon", ErrUnsupported)
	}
	delete(d.mounts, mp)
	delete(d.idxUsed, m.idx)
	pseudo := d.pseudo
	d.event("umount", "unmounted %s", mp)
	d.mu.Unlock()
	if pseudo != nil {
		// Without d.mu: the kernel may wait for a request in the pseudo
		// root to be answered before it drops the entry.
		pseudo.Remove(strings.TrimPrefix(mp, "/"))
	}
	return m.Close()
}

// RemountMount swaps the bootstrap and configuration of a mount.
func (d *Daemon) RemountMount(mountpoint, bootstrap string, cfg *config.Config) error {
	if err := d.RemoveMount(mountpoint); err != nil {
		return err
	}
	return d.AddMount(mountpoint, bootstrap, cfg)
}

// startPrefetch plans and starts the background prefetch of a mount, on
// a goroutine of its own: planning may read from the network (a zran
// blob's blob.meta), which must not happen under the daemon's lock.
func (d *Daemon) startPrefetch(m *Mount, files []string) {
	pc := m.Config.Rafs.Prefetch
	if !pc.Enable {
		pc = m.Config.Cache.Prefetch
	}
	if !pc.Enable {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	planned := make(chan struct{})
	m.pf.mu.Lock()
	m.pf.cancel, m.pf.planned = cancel, planned
	m.pf.mu.Unlock()
	go func() {
		defer close(planned)
		jobs, err := prefetch.ForImage(ctx, m.Image, m.Storage, files, pc.PrefetchAll)
		var p *prefetch.Prefetcher
		if err == nil {
			p, err = prefetch.New(append(pc.PrefetcherOptions(), prefetch.WithLogger(d.log), prefetch.WithMetrics(m.Storage.Metrics()))...)
		}
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("prefetch not started", "mountpoint", m.Mountpoint, "err", err)
			}
			m.pf.mu.Lock()
			m.pf.err = err
			m.pf.mu.Unlock()
			return
		}
		run := p.Start(ctx, jobs)
		m.pf.mu.Lock()
		m.pf.run = run
		m.pf.mu.Unlock()
	}()
}

// Stop unmounts the FUSE session (lazily if busy) and closes every mount.
func (d *Daemon) Stop() error {
	d.mu.Lock()
	srv, dir, ring, fd := d.server, d.mntDir, d.ring, d.fuseFd
	d.server, d.ring, d.fuseFd = nil, nil, -1
	mounts := d.mounts
	d.mounts = map[string]*Mount{}
	d.state = StateStopped
	d.event("state", "STOPPED")
	d.mu.Unlock()
	var errs []error
	if srv != nil {
		var err error
		if fd >= 0 {
			err = syscall.Unmount(dir, 0)
		} else {
			err = srv.Unmount()
		}
		if err != nil {
			d.log.Warn("unmount busy, detaching lazily", "mountpoint", dir, "err", err)
			// EINVAL: not a mountpoint any more (someone ran umount).
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
				errs = append(errs, fmt.Errorf("lazy unmount %s: %w", dir, err))
			}
		}
	}
	if fd >= 0 {
		syscall.Close(fd)
	}
	if ring != nil {
		// After the unmount the queues have ended with the connection;
		// after a lazy one (files still open) Close aborts the
		// connection, as no request may wait on rings nobody serves.
		if err := ring.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, m := range mounts {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

// Wait blocks until the FUSE session's server ends (unmounted from
// outside); a daemon waiting for a takeover waits until it serves and
// that ends.
func (d *Daemon) Wait() { <-d.done }

// maxMounts is how many images one daemon serves at once: an image's
// inode numbers carry its index in their top byte (0 is the daemon's own
// pseudo-root).
const maxMounts = 255

// takeIndex reserves the inode index of a new mount; d.mu is held. It
// takes the next free one after the last taken, so an index freed by an
// unmount is reused as late as possible (the kernel may still hold inodes
// of the old mount), and never wraps into an index a mount still uses.
func (d *Daemon) takeIndex() (uint64, error) {
	for k := range uint64(maxMounts) {
		c := (d.nextIdx-1+k)%maxMounts + 1
		if !d.idxUsed[c] {
			d.idxUsed[c] = true
			d.nextIdx = c%maxMounts + 1
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: this daemon already serves %d images", ErrUnsupported, maxMounts)
}
