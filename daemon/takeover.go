package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/daemon/supervisor"
	"github.com/gonydus/nydus/overlay"
)

// ErrWrongState is the error of a request the daemon's state does not
// allow (HTTP 400, as upstream).
var ErrWrongState = errors.New("daemon: wrong state")

// mountOwnedFUSE mounts /dev/fuse at dir itself and serves rootNode on
// it over /dev/fuse, keeping the descriptor and the INIT exchange for a
// supervisor. d.mu is held.
func (d *Daemon) mountOwnedFUSE(dir string, rootNode fs.InodeEmbedder, opts *fs.Options) (srv *fuse.Server, err error) {
	fd, err := mountOwned(dir, &opts.MountOptions)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = unix.Unmount(dir, unix.MNT_DETACH)
			unix.Close(fd)
		}
	}()
	initIn, err := readInit(fd)
	if err != nil {
		return nil, err
	}
	if err := d.checkPolicy(dir, initIn); err != nil {
		return nil, err
	}
	if err := d.openNodes(true); err != nil {
		return nil, err
	}
	raw := d.newRaw(rootNode, opts)
	srv, initOut, err := newServerOn(raw, fd, initIn, &opts.MountOptions)
	if err != nil {
		return nil, err
	}
	if _, err := unix.Write(fd, initOut); err != nil {
		return nil, fmt.Errorf("answer INIT: %w", err)
	}
	d.fuseFd, d.initIn, d.initOut = fd, initIn, initOut
	go srv.Serve()
	pollHack(dir)
	return srv, nil
}

// pollHack makes the kernel send POLL once, which go-fuse answers ENOSYS,
// so it never polls again on this connection (as go-fuse's WaitMount does
// for the mounts it makes): else the Go runtime's epoll_ctl on a file of
// the mount sends POLL and waits for it without yielding its P, which in
// a process that also serves the mount can stop everything.
func pollHack(dir string) {
	fd, err := unix.Open(filepath.Join(dir, ".go-fuse-epoll-hack"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLPRI | unix.POLLOUT}}, 0)
	unix.Close(fd)
}

// snapshot returns the state a successor needs; d.mu is held.
func (d *Daemon) snapshot() (*sessionState, error) {
	s := &sessionState{DaemonID: d.opts.ID, Mountpoint: d.mntDir, InitIn: d.initIn, InitOut: d.initOut,
		FailoverPolicy: d.opts.FailoverPolicy, Writable: d.opts.Writable, Threads: d.threads, NextIndex: d.nextIdx,
		OverlayGen: d.ovGen}
	for _, m := range d.mounts {
		if m.Overlay != nil && d.nodes == nil {
			return nil, fmt.Errorf("%w: the overlay at %s keeps no node journal", ErrUnsupported, m.Mountpoint)
		}
		cfg, err := json.Marshal(m.Config)
		if err != nil {
			return nil, fmt.Errorf("state: config of %s: %w", m.Mountpoint, err)
		}
		s.Mounts = append(s.Mounts, mountState{Mountpoint: m.Mountpoint, Bootstrap: m.Source, Config: cfg,
			PrefetchFiles: m.prefetchFiles, Index: m.idx})
	}
	return s, nil
}

// supervisorTimeout bounds each exchange with the supervisor.
const supervisorTimeout = 10 * time.Second

// SendFD hands the FUSE descriptor and the session's state to the
// supervisor (PUT /api/v1/daemon/fuse/sendfd). It always dials the
// supervisor once, even when it fails otherwise: nydus-snapshotter waits
// for that connection.
func (d *Daemon) SendFD() error {
	if d.opts.Supervisor == "" {
		return fmt.Errorf("%w: no --supervisor to send the FUSE descriptor to", ErrInvalidInput)
	}
	ctx, cancel := context.WithTimeout(context.Background(), supervisorTimeout)
	defer cancel()
	c, err := supervisor.Dial(ctx, d.opts.Supervisor)
	if err != nil {
		return err
	}
	defer c.Close()
	d.mu.Lock()
	state, fd := d.state, d.fuseFd
	var data []byte
	if (state == StateReady || state == StateRunning) && fd >= 0 {
		var s *sessionState
		if s, err = d.snapshot(); err == nil {
			data, err = s.encode()
		}
	}
	d.mu.Unlock()
	switch {
	case state != StateReady && state != StateRunning:
		err = fmt.Errorf("%w: sendfd in state %s (READY or RUNNING needed)", ErrWrongState, state)
	case fd < 0 && err == nil:
		err = fmt.Errorf("%w: the session is served over io_uring, whose descriptor this daemon does not hold (use --fuse-io-uring=off for failover)", ErrUnsupported)
	}
	if err != nil {
		return err
	}
	if err := supervisor.Send(c, data, fd); err != nil {
		return err
	}
	d.mu.Lock()
	d.event("sendfd", "sent the FUSE descriptor and %d bytes of state to %s", len(data), d.opts.Supervisor)
	d.mu.Unlock()
	return nil
}

// Takeover fetches the FUSE descriptor and state from the supervisor and
// restores the session's mounts (PUT /api/v1/daemon/fuse/takeover): the
// daemon is READY when it returns nil, and serves from Resume. A state it
// cannot use is refused, and the daemon stays in INIT.
func (d *Daemon) Takeover() error {
	if d.opts.Supervisor == "" {
		return fmt.Errorf("%w: no --supervisor to take the session over from", ErrInvalidInput)
	}
	if d.opts.URing == URingOn {
		return fmt.Errorf("%w: takeover with --fuse-io-uring=on: requests on a predecessor's rings cannot be taken over; use --fuse-io-uring=off", ErrUnsupported)
	}
	if st := d.State(); st != StateInit {
		return fmt.Errorf("%w: takeover in state %s (INIT needed)", ErrWrongState, st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), supervisorTimeout)
	defer cancel()
	data, fd, err := supervisor.Fetch(ctx, d.opts.Supervisor)
	if err != nil {
		return err
	}
	s, err := decodeState(data)
	if err == nil {
		err = d.restore(s, fd)
	}
	if err != nil {
		unix.Close(fd)
		return err
	}
	return nil
}

// restore opens the mounts of s and prepares the server of the session
// on fd, which it keeps.
func (d *Daemon) restore(s *sessionState, fd int) (err error) {
	var opened []*Mount
	defer func() {
		if err != nil {
			for _, m := range opened {
				m.Close()
			}
		}
	}()
	for _, ms := range s.Mounts {
		cfg, err := config.Parse(ms.Config)
		if err != nil {
			return fmt.Errorf("%w: state: config of %s: %w", ErrInvalidInput, ms.Mountpoint, err)
		}
		if ms.Index == 0 || ms.Index > maxMounts {
			return fmt.Errorf("%w: state: mount %s has inode index %d", ErrInvalidInput, ms.Mountpoint, ms.Index)
		}
		// An overlay's directories stay the predecessor's until Resume.
		m, err := openMount(path.Clean("/"+ms.Mountpoint), ms.Bootstrap, cfg, d.opts.Backends, ms.Index, d.log, overlay.WithHandover())
		if err != nil {
			return fmt.Errorf("restore %s: %w", ms.Mountpoint, err)
		}
		m.idx, m.prefetchFiles = ms.Index, ms.PrefetchFiles
		opened = append(opened, m)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != StateInit {
		return fmt.Errorf("%w: takeover in state %s (INIT needed)", ErrWrongState, d.state)
	}
	for _, m := range opened {
		if _, dup := d.mounts[m.Mountpoint]; dup || d.idxUsed[m.idx] {
			d.mounts, d.idxUsed = map[string]*Mount{}, map[uint64]bool{}
			return fmt.Errorf("%w: state: mount %s or its index %d twice", ErrInvalidInput, m.Mountpoint, m.idx)
		}
		d.mounts[m.Mountpoint] = m
		d.idxUsed[m.idx] = true
	}
	threads := d.threads
	if threads == 0 {
		threads = s.Threads
	}
	rootNode, opts, err := d.session(nil, threads)
	if err == nil {
		d.ovGen = s.OverlayGen + 1
		err = d.openNodes(false)
	}
	if err == nil {
		raw := d.newRaw(rootNode, opts)
		var srv *fuse.Server
		var initOut []byte
		srv, initOut, err = newServerOn(raw, fd, s.InitIn, &opts.MountOptions)
		if err == nil {
			err = compatibleInit(s.InitOut, initOut)
			if err != nil {
				srv = nil // its descriptor (a dup of fd) is left to the exit
			}
		}
		if err == nil {
			d.server, d.mntDir, d.fuseFd = srv, s.Mountpoint, fd
			d.initIn, d.initOut = s.InitIn, s.InitOut
		}
	}
	if err != nil {
		if d.nodes != nil {
			d.nodes.close()
		}
		d.mounts, d.idxUsed, d.direct, d.pseudo, d.nodes = map[string]*Mount{}, map[uint64]bool{}, nil, nil, nil
		return err
	}
	if s.NextIndex > 0 {
		d.nextIdx = s.NextIndex
	}
	d.tuneAll()
	d.state = StateReady
	d.event("takeover", "took over the FUSE session at %s from %s (%d mounts), READY", s.Mountpoint, d.opts.Supervisor, len(opened))
	d.log.Info("took over the FUSE session", "mountpoint", s.Mountpoint, "mounts", len(opened))
	for _, m := range opened {
		d.startPrefetch(m, m.prefetchFiles)
	}
	return nil
}

// compatibleInit checks that this daemon's answer to the saved INIT
// agrees with what the kernel was answered: the kernel keeps the
// predecessor's max_write (a read buffer too small for it fails) and
// flags.
func compatibleInit(saved, ours []byte) error {
	sf, sw, err := initOutFlags(saved)
	if err != nil {
		return fmt.Errorf("%w: state: %w", ErrInvalidInput, err)
	}
	of, ow, err := initOutFlags(ours)
	if err != nil {
		return err
	}
	if ow < sw {
		return fmt.Errorf("%w: the session was negotiated with max_write %d, this daemon reads at most %d", ErrUnsupported, sw, ow)
	}
	if sf != of {
		return fmt.Errorf("%w: the session was negotiated with flags %#x, this daemon would answer %#x (started with other options?)", ErrUnsupported, sf, of)
	}
	return nil
}

// Resume starts serving a session taken over (PUT /api/v1/daemon/start):
// the failover policy drains what the predecessor left, then requests are
// read. In RUNNING it does nothing.
func (d *Daemon) Resume() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.state == StateRunning:
		return nil
	case d.state != StateReady || d.server == nil || d.serving:
		return fmt.Errorf("%w: start in state %s (READY after a takeover needed)", ErrWrongState, d.state)
	}
	if err := d.resumeOverlay(); err != nil {
		return err
	}
	if err := d.drain(d.fuseFd, d.mntDir); err != nil {
		return err
	}
	srv := d.server
	d.serving = true
	go srv.Serve()
	go func() { srv.Wait(); close(d.done) }()
	d.state = StateRunning
	d.event("state", "serving the FUSE session taken over at %s, RUNNING", d.mntDir)
	return nil
}

// Exit stops the daemon for a successor (PUT /api/v1/daemon/exit): it
// leaves the FUSE mount in place and the descriptor with the supervisor.
// The caller then ends the process; requests read and not answered by
// then are the successor's to resend.
func (d *Daemon) Exit() {
	d.mu.Lock()
	d.state = StateStopped
	d.event("state", "exiting without unmounting, STOPPED")
	d.mu.Unlock()
}

// SetThreads sets the FUSE worker count of a session to be taken over.
func (d *Daemon) SetThreads(n int) {
	d.mu.Lock()
	d.threads = n
	d.mu.Unlock()
}
