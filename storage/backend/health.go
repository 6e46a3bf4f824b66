package backend

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// health tracks whether an endpoint (a mirror, a proxy) should take
// requests: it is down after limit failures in a row, and up again once a
// health check (a GET of ping answering below 500; with no ping, simply
// the passing of interval) succeeds. Checks run in the background, at
// most once per interval.
type health struct {
	ping     string
	interval time.Duration
	limit    int

	mu        sync.Mutex
	failures  int
	down      bool
	lastCheck time.Time
	checking  bool
}

// usable reports whether the endpoint may take a request, starting a
// health check of a down endpoint when one is due.
func (h *health) usable(client *http.Client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down {
		return true
	}
	if !h.checking && time.Since(h.lastCheck) >= h.interval {
		h.checking = true
		h.lastCheck = time.Now()
		go h.check(client)
	}
	return false
}

func (h *health) check(client *http.Client) {
	ok := h.ping == ""
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), h.interval)
		defer cancel()
		if req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.ping, nil); err == nil {
			if resp, err := client.Do(req); err == nil {
				drain(resp)
				ok = resp.StatusCode < 500
			}
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checking = false
	if ok {
		h.down, h.failures = false, 0
	}
}

// result records the outcome of a request.
func (h *health) result(ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ok {
		h.failures = 0
		return
	}
	h.failures++
	if h.failures >= h.limit {
		h.down = true
		h.lastCheck = time.Now()
	}
}
