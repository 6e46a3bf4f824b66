package faultproxy

import (
	"net/http"
	"sync"
	"time"
)

// bucket is a token bucket shared by all responses: rate bytes per second
// with a burst of a tenth of a second.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func (b *bucket) setRate(bytesPerSecond int64) {
	b.mu.Lock()
	b.rate, b.tokens, b.last = float64(bytesPerSecond), 0, time.Now()
	b.mu.Unlock()
}

// wait takes n tokens, sleeping while the bucket is short; false when the
// client or the proxy went away meanwhile.
func (b *bucket) wait(r *http.Request, done <-chan struct{}, n int) bool {
	b.mu.Lock()
	if b.rate <= 0 {
		b.mu.Unlock()
		return true
	}
	now := time.Now()
	b.tokens = min(b.tokens+now.Sub(b.last).Seconds()*b.rate, b.rate/10)
	b.last = now
	b.tokens -= float64(n)
	var d time.Duration
	if b.tokens < 0 {
		d = time.Duration(-b.tokens / b.rate * float64(time.Second))
	}
	b.mu.Unlock()
	if d == 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
	case <-done:
	}
	return false
}
