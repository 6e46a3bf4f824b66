package backend

import (
	"sync"
	"time"
)

// latencyBounds are nydusd's latency buckets in milliseconds (the last
// bucket is everything above 2000 ms).
var latencyBounds = [7]int64{1, 20, 50, 100, 500, 1000, 2000}

// sizeBounds are nydusd's block-size buckets in bytes.
var sizeBounds = [7]int64{1 << 10, 4 << 10, 16 << 10, 64 << 10, 128 << 10, 512 << 10, 1 << 20}

// MetricsSnapshot has the shape of nydusd's /api/v1/metrics/backend.
// Reads are bucketed by size (≤1K, ≤4K, ≤16K, ≤64K, ≤128K, ≤512K, ≤1M,
// more) and latency (≤1, ≤20, ≤50, ≤100, ≤500, ≤1000, ≤2000, more ms).
type MetricsSnapshot struct {
	BackendType            string `json:"backend_type"`
	ReadCount              uint64 `json:"read_count"`
	ReadErrors             uint64 `json:"read_errors"`
	ReadAmountTotal        uint64 `json:"read_amount_total"`
	ReadLatencyMillisTotal uint64 `json:"read_cumulative_latency_millis_total"`
	// ReadLatencyMillisDist is the cumulative latency of the reads of
	// each size bucket.
	ReadLatencyMillisDist [8]uint64 `json:"read_cumulative_latency_millis_dist"`
	// ReadCountBlockSizeDist counts the reads of each size bucket.
	ReadCountBlockSizeDist [8]uint64 `json:"read_count_block_size_dist"`
	// ReadLatencySizesDist counts reads by size bucket, then latency
	// bucket.
	ReadLatencySizesDist [8][8]uint64 `json:"read_latency_sizes_dist"`
	// Retries counts repeated attempts (not in upstream's shape).
	Retries uint64 `json:"retries"`
}

type metrics struct {
	mu sync.Mutex
	s  MetricsSnapshot
}

func bucket(v int64, bounds [7]int64) int {
	for i, b := range bounds {
		if v <= b {
			return i
		}
	}
	return 7
}

func (m *metrics) record(n int, d time.Duration, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.s.ReadCount++
	if err != nil {
		m.s.ReadErrors++
	}
	m.s.ReadAmountTotal += uint64(n)
	ms := d.Milliseconds()
	size := bucket(int64(n), sizeBounds)
	m.s.ReadLatencyMillisTotal += uint64(ms)
	m.s.ReadLatencyMillisDist[size] += uint64(ms)
	m.s.ReadCountBlockSizeDist[size]++
	m.s.ReadLatencySizesDist[size][bucket(ms, latencyBounds)]++
}

func (m *metrics) retry() {
	m.mu.Lock()
	m.s.Retries++
	m.mu.Unlock()
}

func (m *metrics) snapshot(typ string) MetricsSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.s
	s.BackendType = typ
	return s
}
