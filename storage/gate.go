package storage

import (
	"context"
	"sync"
)

// Priority orders fetches at the Gate.
type Priority int

// Priorities.
const (
	// PriorityUser is a read a process is waiting for.
	PriorityUser Priority = iota
	// PriorityPrefetch is background prefetch; it yields to user reads.
	PriorityPrefetch
)

// Gate bounds the number of backend fetches in flight across blobs and
// hands free slots to user reads before prefetch. Prefetch never takes the
// last slot while more than one exists, and never takes a slot while a user
// read waits, so a user read waits at most for one fetch to finish.
type Gate struct {
	mu      sync.Mutex
	slots   int
	used    int
	waiters [2][]*gateWaiter // by priority
	users   int              // user fetches in flight or waiting
}

type gateWaiter struct {
	ready   chan struct{}
	granted bool
}

// NewGate returns a gate with n slots (at least 1).
func NewGate(n int) *Gate { return &Gate{slots: max(n, 1)} }

// Slots returns the number of slots.
func (g *Gate) Slots() int { return g.slots }

// UserBusy reports whether user reads are fetching or waiting to fetch;
// background work should back off while it is true.
func (g *Gate) UserBusy() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.users > 0
}

func (g *Gate) canGrant(p Priority) bool {
	if g.used >= g.slots {
		return false
	}
	if p == PriorityUser {
		return true
	}
	reserve := 0
	if g.slots > 1 {
		reserve = 1
	}
	return len(g.waiters[PriorityUser]) == 0 && g.used < g.slots-reserve
}

// Acquire takes a slot, waiting until one is free or ctx ends.
func (g *Gate) Acquire(ctx context.Context, p Priority) error {
	g.mu.Lock()
	if p == PriorityUser {
		g.users++
	}
	if len(g.waiters[p]) == 0 && g.canGrant(p) {
		g.used++
		g.mu.Unlock()
		return nil
	}
	w := &gateWaiter{ready: make(chan struct{})}
	g.waiters[p] = append(g.waiters[p], w)
	g.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		defer g.mu.Unlock()
		if w.granted {
			g.releaseLocked(p)
		} else {
			g.remove(p, w)
			if p == PriorityUser {
				g.users--
			}
		}
		return ctx.Err()
	}
}

func (g *Gate) remove(p Priority, w *gateWaiter) {
	q := g.waiters[p]
	for i, x := range q {
		if x == w {
			g.waiters[p] = append(q[:i], q[i+1:]...)
			return
		}
	}
}

// Release returns a slot taken with Acquire at priority p.
func (g *Gate) Release(p Priority) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.releaseLocked(p)
}

func (g *Gate) releaseLocked(p Priority) {
	g.used--
	if p == PriorityUser {
		g.users--
	}
	for _, q := range []Priority{PriorityUser, PriorityPrefetch} {
		for len(g.waiters[q]) > 0 && g.canGrantWaiter(q) {
			w := g.waiters[q][0]
			g.waiters[q] = g.waiters[q][1:]
			w.granted = true
			g.used++
			close(w.ready)
		}
	}
}

// canGrantWaiter is canGrant for the head of queue p (which is itself not
// counted as a competing waiter).
func (g *Gate) canGrantWaiter(p Priority) bool {
	if p == PriorityUser {
		return g.used < g.slots
	}
	return g.canGrant(p)
}
