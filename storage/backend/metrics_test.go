package backend

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestMetricsBuckets(t *testing.T) {
	var m metrics
	m.record(512, 0, nil)                                  // ≤1K, ≤1 ms
	m.record(4096, 30*time.Millisecond, nil)               // ≤4K, ≤50 ms
	m.record(1<<20, 1500*time.Millisecond, nil)            // ≤1M, ≤2000 ms
	m.record(2<<20, 3*time.Second, nil)                    // >1M, >2000 ms
	m.record(0, 10*time.Millisecond, errors.New("failed")) // an error: no bytes
	m.retry()
	s := m.snapshot("registry")
	if s.ReadCount != 5 || s.ReadErrors != 1 || s.Retries != 1 || s.ReadAmountTotal != 512+4096+1<<20+2<<20 {
		t.Fatalf("counters %+v", s)
	}
	if s.ReadLatencyMillisTotal != 30+1500+3000+10 {
		t.Fatalf("cumulative latency %d", s.ReadLatencyMillisTotal)
	}
	if s.ReadCountBlockSizeDist != [8]uint64{2, 1, 0, 0, 0, 0, 1, 1} {
		t.Fatalf("size distribution %v", s.ReadCountBlockSizeDist)
	}
	if s.ReadLatencyMillisDist != [8]uint64{10, 30, 0, 0, 0, 0, 1500, 3000} {
		t.Fatalf("latency per size %v", s.ReadLatencyMillisDist)
	}
	if s.ReadLatencySizesDist[0][0] != 1 || s.ReadLatencySizesDist[0][1] != 1 || s.ReadLatencySizesDist[1][2] != 1 ||
		s.ReadLatencySizesDist[6][6] != 1 || s.ReadLatencySizesDist[7][7] != 1 {
		t.Fatalf("size x latency %v", s.ReadLatencySizesDist)
	}
	raw, _ := json.Marshal(s)
	var fields map[string]json.RawMessage
	json.Unmarshal(raw, &fields)
	for _, k := range []string{"backend_type", "read_count", "read_errors", "read_amount_total", "read_cumulative_latency_millis_total",
		"read_cumulative_latency_millis_dist", "read_count_block_size_dist", "read_latency_sizes_dist"} {
		if _, ok := fields[k]; !ok {
			t.Fatalf("JSON lacks %s: %s", k, raw)
		}
	}
}
