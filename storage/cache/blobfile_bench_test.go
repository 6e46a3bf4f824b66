package cache

import (
	"testing"
	"time"

	"github.com/gonydus/nydus/rafs/layout"
)

// BenchmarkPutSync measures the durability policy: fdatasync per chunk
// versus batched syncs (the default), writing 64 KiB chunks to the test
// temp directory (TMPDIR; put it on a real disk to see real costs).
func BenchmarkPutSync(b *testing.B) {
	const chunk = 64 << 10
	for _, tc := range []struct {
		name     string
		interval time.Duration
	}{{"per-chunk", 0}, {"batched", DefaultSyncInterval}} {
		b.Run(tc.name, func(b *testing.B) {
			const n = 1 << 20 // sparse: 64 GiB of address space
			e := &layout.BlobEntry{ChunkCount: n, UncompressedSize: uint64(n) * chunk, CompressedSize: uint64(n) * chunk}
			e.SetID("bench")
			f, err := Open(b.TempDir(), e, WithSync(tc.interval, DefaultSyncBytes))
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, chunk)
			b.SetBytes(chunk)
			i := uint32(0)
			for b.Loop() {
				c := &layout.ChunkInfo{Index: i, UncompressedOffset: uint64(i) * chunk, UncompressedSize: chunk, CompressedOffset: uint64(i) * chunk, CompressedSize: chunk}
				if err := f.Put(c, data); err != nil {
					b.Fatal(err)
				}
				i = (i + 1) % n
			}
			if err := f.Close(); err != nil { // includes the last batch's sync
				b.Fatal(err)
			}
		})
	}
}
