package rafsfs

import (
	"sync"
	"sync/atomic"
	"time"
)

// FileStats are the per-file counters nydusd reports at /api/v1/metrics/files.
type FileStats struct {
	Nid        uint64 `json:"nid"`
	ReadCount  uint64 `json:"nr_read"`
	ReadBytes  uint64 `json:"block_count_read_bytes"`
	ReadErrors uint64 `json:"fop_errors"`
	LatencyUs  uint64 `json:"fop_cumulative_latency_total_us"`
}

// Stats collects file-access metrics of one filesystem.
type Stats struct {
	mu    sync.Mutex
	files map[uint64]*FileStats
	order []uint64 // access order, for /metrics/pattern

	pushedBytes atomic.Int64 // file tails stored in the page cache
	pushFailed  atomic.Int64

	sizeHist    [HistBuckets]uint64 // READs by size (SizeBucket)
	latencyHist [HistBuckets]uint64 // READs by latency (LatencyBucket)
}

// HistBuckets is the number of buckets of upstream nydusd's read size and
// read latency histograms.
const HistBuckets = 8

// SizeBucket is upstream's read size bucket: ≤1, 4, 16, 64, 128, 512,
// 1024 KiB, more.
func SizeBucket(n int) int {
	for i, kib := range [HistBuckets - 1]int{1, 4, 16, 64, 128, 512, 1024} {
		if n <= kib<<10 {
			return i
		}
	}
	return HistBuckets - 1
}

// LatencyBucket is upstream's read latency bucket: ≤1, 20, 50, 100, 500,
// 1000, 2000 µs, more.
func LatencyBucket(d time.Duration) int {
	us := d.Microseconds()
	for i, max := range [HistBuckets - 1]int64{1, 20, 50, 100, 500, 1000, 2000} {
		if us <= max {
			return i
		}
	}
	return HistBuckets - 1
}

// Histograms returns the READ counts by size and by latency bucket.
func (s *Stats) Histograms() (size, latency [HistBuckets]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sizeHist, s.latencyHist
}

func (s *Stats) pushed(n int64) { s.pushedBytes.Add(n) }

// Pushed reports the bytes of file tails stored in the kernel's page cache
// ahead of their READs, and how many such pushes failed (each failure only
// costs the READ the push would have saved).
func (s *Stats) Pushed() (bytes, failed int64) { return s.pushedBytes.Load(), s.pushFailed.Load() }

func newStats() *Stats { return &Stats{files: map[uint64]*FileStats{}} }

func (s *Stats) read(nid uint64, n int, d time.Duration, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[nid]
	if f == nil {
		f = &FileStats{Nid: nid}
		s.files[nid] = f
		s.order = append(s.order, nid)
	}
	f.ReadCount++
	f.ReadBytes += uint64(n)
	s.sizeHist[SizeBucket(n)]++
	s.latencyHist[LatencyBucket(d)]++
	f.LatencyUs += uint64(d.Microseconds())
	if failed {
		f.ReadErrors++
	}
}

// Files returns a snapshot of per-file counters in first-access order.
func (s *Stats) Files() []FileStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]FileStats, 0, len(s.order))
	for _, nid := range s.order {
		out = append(out, *s.files[nid])
	}
	return out
}
