package fuseuring

// What the queues served.

import (
	"github.com/gonydus/nydus/internal/fuseabi"
)

// QueueStats counts what one queue served.
type QueueStats struct {
	QID      int
	Requests uint64 // requests answered
	Errors   uint64 // of which with an error status
	Ops      map[string]uint64
}

// Stats is a snapshot of a Transport's counters.
type Stats struct {
	Queues   []QueueStats
	Requests uint64
}

// Stats returns per-queue request counts.
func (t *Transport) Stats() Stats {
	var s Stats
	for _, q := range t.queues {
		qs := QueueStats{QID: q.qid, Requests: q.reqs.Load(), Errors: q.errs.Load(), Ops: map[string]uint64{}}
		for op := range q.ops {
			if v := q.ops[op].Load(); v > 0 {
				qs.Ops[fuseabi.OpName(uint32(op))] = v
			}
		}
		s.Requests += qs.Requests
		s.Queues = append(s.Queues, qs)
	}
	return s
}
