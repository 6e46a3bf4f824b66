package testregistry

import "time"

// gateLimit bounds how long a held blob GET waits, so a test that forgets
// to Release cannot hang.
const gateLimit = 60 * time.Second

// Hold makes blob GETs wait, past auth, until Release (or a minute): a
// test holds them to keep a read in a client's hands.
func (r *InProcess) Hold() {
	r.mu.Lock()
	if r.gate == nil {
		r.gate = make(chan struct{})
	}
	r.mu.Unlock()
}

// Release lets held blob GETs through and stops holding new ones.
func (r *InProcess) Release() {
	r.mu.Lock()
	if r.gate != nil {
		close(r.gate)
		r.gate = nil
	}
	r.mu.Unlock()
}

// Held returns how many blob GETs are waiting at the gate.
func (r *InProcess) Held() int64 { return r.held.Load() }

// wait blocks while the gate is held.
func (r *InProcess) wait() {
	r.mu.Lock()
	g := r.gate
	r.mu.Unlock()
	if g == nil {
		return
	}
	r.held.Add(1)
	defer r.held.Add(-1)
	select {
	case <-g:
	case <-time.After(gateLimit):
	}
}
