// Package supervisor is the server side of the nydusd supervisor socket,
// as nydus-snapshotter speaks it: nydusd (started with --supervisor SOCK)
// dials SOCK to hand over an opaque state blob and its /dev/fuse
// descriptor (PUT /api/v1/daemon/fuse/sendfd), and a new nydusd dials it
// to get them back (PUT /api/v1/daemon/fuse/takeover).
//
// The wire format: an AF_UNIX stream; each listen accepts one connection,
// then the socket file goes; the payload is opaque and ends at EOF; one
// SCM_RIGHTS message with one descriptor rides on the first write. The
// supervisor keeps its copy of the descriptor, which keeps the kernel's
// FUSE connection alive while no daemon runs, so a failover can repeat.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Supervisor holds the last state one nydusd handed over.
type Supervisor struct {
	path string
	op   chan struct{} // one listen at a time: both directions use path

	mu   sync.Mutex
	data []byte
	fd   int // -1 until a state arrives; a raw descriptor, so that nothing
	// here changes the flags of the open file it shares with nydusd
}

// New returns a supervisor listening, when asked to, on the unix socket
// path (at most 107 bytes).
func New(path string) (*Supervisor, error) {
	if path == "" {
		return nil, errors.New("supervisor: empty socket path")
	}
	if len(path) > 107 {
		return nil, fmt.Errorf("supervisor: socket path %q is longer than a unix socket path may be (107 bytes)", path)
	}
	return &Supervisor{path: path, op: make(chan struct{}, 1), fd: -1}, nil
}

// Path is the socket path nydusd is told with --supervisor.
func (s *Supervisor) Path() string { return s.path }

// Stored reports whether a state (blob and descriptor) has been received.
func (s *Supervisor) Stored() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fd >= 0
}

// State returns a copy of the stored blob and the stored descriptor (-1
// before the first Receive); the descriptor stays the supervisor's.
func (s *Supervisor) State() ([]byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.data...), s.fd
}

// Close drops the stored descriptor: when no daemon holds one either, the
// kernel ends the FUSE connection.
func (s *Supervisor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd, s.data = -1, nil
	return err
}

// lock takes the socket path for one exchange, waiting until ctx ends.
func (s *Supervisor) lock(ctx context.Context) error {
	select {
	case s.op <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("supervisor: %s busy: %w", s.path, ctx.Err())
	}
}

func (s *Supervisor) unlock() { <-s.op }

// listen replaces whatever is at the socket path with a fresh listener;
// the socket file goes when the listener closes.
func (s *Supervisor) listen() (*net.UnixListener, error) {
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w", err)
	}
	l.SetUnlinkOnClose(true)
	return l, nil
}

// acceptOne accepts one connection before ctx ends.
func acceptOne(ctx context.Context, l *net.UnixListener) (*net.UnixConn, error) {
	if dl, ok := ctx.Deadline(); ok {
		l.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { l.SetDeadline(time.Now()) })
	defer stop()
	c, err := l.AcceptUnix()
	if err != nil {
		cause := ctx.Err()
		if cause == nil && errors.Is(err, os.ErrDeadlineExceeded) {
			cause = context.DeadlineExceeded // ctx's deadline, a moment before ctx sees it
		}
		if cause != nil {
			return nil, fmt.Errorf("supervisor: no daemon dialed %s: %w", l.Addr(), cause)
		}
		return nil, fmt.Errorf("supervisor: accept: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	return c, nil
}
