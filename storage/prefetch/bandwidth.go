package prefetch

import (
	"context"
	"sync"
	"time"
)

// bandwidth spaces requests so their bytes average at most rate bytes per
// second: each request of n bytes pushes the start of the next one n/rate
// seconds later.
type bandwidth struct {
	rate float64

	mu   sync.Mutex
	next time.Time
}

func newBandwidth(bytesPerSec uint64) *bandwidth {
	if bytesPerSec == 0 {
		return nil
	}
	return &bandwidth{rate: float64(bytesPerSec)}
}

// wait blocks until n more bytes may be fetched, or ctx ends.
func (b *bandwidth) wait(ctx context.Context, n uint64) error {
	if b == nil || n == 0 {
		return ctx.Err()
	}
	b.mu.Lock()
	now := time.Now()
	if b.next.Before(now) {
		b.next = now
	}
	at := b.next
	b.next = at.Add(time.Duration(float64(n) / b.rate * float64(time.Second)))
	b.mu.Unlock()
	return sleep(ctx, time.Until(at))
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
