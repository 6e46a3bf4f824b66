package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// triggerGrace is how long Receive still waits for the daemon's
// connection after the call that should make it dial failed: nydusd
// dials even when it answers sendfd with an error.
const triggerGrace = 2 * time.Second

// Receive listens on the socket path, runs trigger (which makes nydusd
// dial it: PUT /api/v1/daemon/fuse/sendfd) and takes the one connection
// that follows: the blob up to EOF and the descriptor of its first
// message. The new state replaces the stored one (the old descriptor is
// closed). Everything ends when ctx does.
func (s *Supervisor) Receive(ctx context.Context, trigger func(context.Context) error) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	l, err := s.listen()
	if err != nil {
		return err
	}
	defer l.Close()
	acceptCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	trig := make(chan error, 1)
	go func() {
		err := trigger(ctx)
		if err != nil {
			time.AfterFunc(triggerGrace, cancel)
		}
		trig <- err
	}()
	c, err := acceptOne(acceptCtx, l)
	if err != nil {
		select {
		case terr := <-trig:
			if terr != nil {
				return fmt.Errorf("supervisor: %w (and the daemon never dialed: %w)", terr, err)
			}
		default:
		}
		return err
	}
	data, fd, rerr := ReadState(c)
	c.Close()
	var terr error
	select {
	case terr = <-trig:
	case <-ctx.Done():
		terr = ctx.Err()
	}
	if rerr != nil {
		return errors.Join(rerr, terr)
	}
	s.mu.Lock()
	old := s.fd
	s.data, s.fd = data, fd
	s.mu.Unlock()
	if old >= 0 {
		unix.Close(old)
	}
	if terr != nil {
		return fmt.Errorf("supervisor: state received, but the call that asked for it failed: %w", terr)
	}
	return nil
}

// ReadState reads one hand-over from c: the payload to EOF and the first
// descriptor of the first control message (any others are closed). The
// caller owns the descriptor and closes c.
func ReadState(c *net.UnixConn) ([]byte, int, error) {
	buf := make([]byte, 256<<10)
	oob := make([]byte, unix.CmsgSpace(4)*64)
	var data []byte
	fd := -1
	fail := func(err error) ([]byte, int, error) {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, -1, err
	}
	for {
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		data = append(data, buf[:n]...)
		if oobn > 0 {
			fds, perr := parseRights(oob[:oobn])
			if perr != nil {
				return fail(perr)
			}
			for _, f := range fds {
				if fd < 0 {
					fd = f
				} else {
					unix.Close(f)
				}
			}
		}
		if errors.Is(err, io.EOF) || (err == nil && n == 0 && oobn == 0) {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("supervisor: reading state: %w", err))
		}
	}
	if fd < 0 {
		return fail(errors.New("supervisor: received no control file descriptor"))
	}
	if len(data) == 0 {
		return fail(errors.New("supervisor: received a descriptor with an empty state"))
	}
	return data, fd, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("supervisor: control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		r, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		fds = append(fds, r...)
	}
	return fds, nil
}
