package supervisor

import (
	"context"
	"errors"
)

// Offer listens on the socket path now and, in the background, serves
// the stored state to the one connection that comes before ctx ends: the
// blob, with the stored descriptor on its first message, then EOF. The
// supervisor keeps its descriptor and blob, so the state can be offered
// again. The channel reports how that went (nil once sent).
func (s *Supervisor) Offer(ctx context.Context) (<-chan error, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	data, fd := s.State()
	if fd < 0 || len(data) == 0 {
		s.unlock()
		return nil, errors.New("supervisor: no state to offer: no daemon has handed one over")
	}
	l, err := s.listen()
	if err != nil {
		s.unlock()
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		defer s.unlock()
		defer l.Close()
		c, err := acceptOne(ctx, l)
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- Send(c, data, fd)
	}()
	return done, nil
}
