package rafsfs

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 0}, {1024, 0}, {1025, 1}, {4096, 1}, {64 << 10, 3}, {128 << 10, 4}, {1 << 20, 6}, {1<<20 + 1, 7},
	} {
		if got := SizeBucket(c.n); got != c.want {
			t.Errorf("SizeBucket(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {time.Microsecond, 0}, {2 * time.Microsecond, 1}, {100 * time.Microsecond, 3},
		{time.Millisecond, 5}, {2 * time.Millisecond, 6}, {time.Second, 7},
	} {
		if got := LatencyBucket(c.d); got != c.want {
			t.Errorf("LatencyBucket(%v) = %d, want %d", c.d, got, c.want)
		}
	}
	s := newStats()
	s.read(1, 4096, 30*time.Microsecond, false)
	s.read(1, 2<<20, 3*time.Millisecond, false)
	size, lat := s.Histograms()
	if size[1] != 1 || size[7] != 1 || lat[2] != 1 || lat[7] != 1 {
		t.Fatalf("histograms %v %v", size, lat)
	}
}
