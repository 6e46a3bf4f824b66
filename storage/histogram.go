package storage

import (
	"sync/atomic"
	"time"
)

// LatencyBounds are the upper bounds of the latency histogram buckets; the
// last bucket counts everything slower.
var latencyBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond,
	100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second,
}

// Histogram counts durations in fixed buckets (≤50µs, ≤100µs, ≤500µs,
// ≤1ms, ≤5ms, ≤20ms, ≤100ms, ≤500ms, ≤2s, >2s). Safe for concurrent use.
type Histogram struct {
	buckets [len(latencyBounds) + 1]atomic.Uint64
	count   atomic.Uint64
	sumNs   atomic.Uint64
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.count.Add(1)
	h.sumNs.Add(uint64(max(d, 0)))
}

// HistogramSnapshot is a point-in-time copy of a Histogram.
type HistogramSnapshot struct {
	BoundsMicros []int64  `json:"bounds_micros"`
	Buckets      []uint64 `json:"buckets"`
	Count        uint64   `json:"count"`
	SumMicros    uint64   `json:"sum_micros"`
}

// Snapshot copies the histogram.
func (h *Histogram) Snapshot() HistogramSnapshot {
	s := HistogramSnapshot{Count: h.count.Load(), SumMicros: h.sumNs.Load() / 1000}
	for _, b := range latencyBounds {
		s.BoundsMicros = append(s.BoundsMicros, b.Microseconds())
	}
	for i := range h.buckets {
		s.Buckets = append(s.Buckets, h.buckets[i].Load())
	}
	return s
}
