package rafsfs

import (
	"strings"
	"sync/atomic"

	"github.com/gonydus/nydus/internal/fuseabi"
)

// Requests counts the FUSE requests a filesystem answered, by opcode.
// FORGET counts forgotten inodes: a BATCH_FORGET of n inodes adds n.
type Requests struct {
	n [fuseabi.NumOpcodes]atomic.Uint64
}

func (r *Requests) add(op int) { r.n[op].Add(1) }

// Counts returns the non-zero counters by lower-case opcode name
// ("lookup", "readdirplus", ...).
func (r *Requests) Counts() map[string]uint64 {
	out := map[string]uint64{}
	for op := range r.n {
		if v := r.n[op].Load(); v != 0 {
			out[strings.ToLower(fuseabi.OpName(uint32(op)))] = v
		}
	}
	return out
}

// Total returns the number of requests answered, FORGETs excluded (they
// are counted per inode and need no answer).
func (r *Requests) Total() uint64 {
	var t uint64
	for op := range r.n {
		if op != fuseabi.OpForget {
			t += r.n[op].Load()
		}
	}
	return t
}
