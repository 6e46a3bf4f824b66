package storage

import (
	"context"
	"sync"
)

// flight is one in-progress fetch of a chunk, shared by every reader of it.
type flight struct {
	done chan struct{}
	data []byte // verified uncompressed bytes; read-only once done
	err  error
}

// wait blocks until the fetch finishes or ctx ends.
func (f *flight) wait(ctx context.Context) ([]byte, error) {
	select {
	case <-f.done:
		return f.data, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// flights tracks in-progress chunk fetches of one blob by chunk index.
type flights struct {
	mu sync.Mutex
	m  map[uint32]*flight
}

// join returns the flight for chunk idx; lead is true when the caller
// created it and must finish it.
func (fs *flights) join(idx uint32) (f *flight, lead bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.m[idx]; ok {
		return f, false
	}
	if fs.m == nil {
		fs.m = map[uint32]*flight{}
	}
	f = &flight{done: make(chan struct{})}
	fs.m[idx] = f
	return f, true
}

// lead creates the flight for chunk idx unless one exists.
func (fs *flights) lead(idx uint32) *flight {
	if f, lead := fs.join(idx); lead {
		return f
	}
	return nil
}

// finish publishes the result of a flight the caller leads.
func (fs *flights) finish(idx uint32, f *flight, data []byte, err error) {
	fs.mu.Lock()
	if fs.m[idx] == f {
		delete(fs.m, idx)
	}
	fs.mu.Unlock()
	f.data, f.err = data, err
	close(f.done)
}

// busy reports whether chunk idx is being fetched.
func (fs *flights) busy(idx uint32) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	_, ok := fs.m[idx]
	return ok
}
