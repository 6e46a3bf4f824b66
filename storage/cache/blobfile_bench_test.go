package cache

import (
	"testing"
	"time"

	"github.com/gonydus/nydus/rafs/layout"
)

// BenchmarkPutSync measures the durability policy: fdatasync per chunk
// versus batched syncs (the default), each iteration writing 256 chunks of
// 64 KiB per policy to the test temp directory (TMPDIR; put it on a real
// disk to see real costs). It reports the cost per chunk of both and the
// speedup of batching.
func BenchmarkPutSync(b *testing.B) {
	const chunk, n = 64 << 10, 256
	data := make([]byte, chunk)
	put := func(interval time.Duration) time.Duration {
		e := &layout.BlobEntry{ChunkCount: n, UncompressedSize: n * chunk, CompressedSize: n * chunk}
		e.SetID("bench")
		f, err := Open(b.TempDir(), e, WithSync(interval, DefaultSyncBytes))
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for i := range uint32(n) {
			c := &layout.ChunkInfo{Index: i, UncompressedOffset: uint64(i) * chunk, UncompressedSize: chunk, CompressedOffset: uint64(i) * chunk, CompressedSize: chunk}
			if err := f.Put(c, data); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Close(); err != nil { // includes the last batch's sync
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var each, batched time.Duration
	for b.Loop() {
		each += put(0)
		batched += put(DefaultSyncInterval)
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N*n) }
	b.ReportMetric(per(each), "sync-each-µs/chunk")
	b.ReportMetric(per(batched), "batched-µs/chunk")
	b.ReportMetric(each.Seconds()/batched.Seconds(), "speedup")
}
