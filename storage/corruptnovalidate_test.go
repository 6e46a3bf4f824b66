package storage_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/rafs/digest"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/cache"
)

// TestCorruptCacheWithoutValidation documents what a flipped byte in a
// filled cache does when cache validation is off (the default, as
// upstream's digest_validate=false): the uncompressed cache serves the
// corrupt bytes, without an error and without counting them (issue 16 item
// 4: cached chunks are trusted unless validate is set; with validate,
// TestCorruptCacheIsDetectedAndRefetched shows the chunk refetched). The
// compressed cache decodes the stored bytes, so a flip there is caught
// only when it breaks decompression. When this test starts failing
// because corrupt bytes are refused, update it: that is the fix.
func TestCorruptCacheWithoutValidation(t *testing.T) {
	for _, compressed := range []bool{false, true} {
		t.Run(map[bool]string{false: "data", true: "raw"}[compressed], func(t *testing.T) {
			tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 512<<10)
			dir := t.TempDir()
			r := openCounting(t, tb.path)
			b := newBlob(t, tb, r, storage.WithCache(openCache(t, dir, tb, cache.WithCompressed(compressed))))
			readAll(t, b, tb)
			b.Close()
			victim := tb.chunks[5]
			for _, c := range tb.chunks {
				if c.Flags&layout.ChunkCompressed != 0 {
					victim = c // a zstd frame, for the compressed cache
					break
				}
			}
			if compressed && victim.Flags&layout.ChunkCompressed == 0 {
				t.Fatal("no compressed chunk in the test blob")
			}
			if compressed {
				flipByte(t, filepath.Join(dir, tb.entry.ID()+cache.RawSuffix), int64(victim.CompressedOffset)+int64(victim.CompressedSize)/2)
			} else {
				flipByte(t, filepath.Join(dir, tb.entry.ID()+cache.DataSuffix), int64(victim.UncompressedOffset+100))
			}
			r.reset()
			b2 := newBlob(t, tb, r, storage.WithCache(openCache(t, dir, tb, cache.WithCompressed(compressed))), storage.WithAmplify(0))
			got, err := b2.ReadChunk(ctxT(t), victim, nil)
			m := b2.Metrics().Snapshot()
			want := tb.want[victim.Index]
			verified := err == nil && digest.Sum(tb.entry.Digester, got) == victim.Digest
			t.Logf("validate off, %s cache, flipped byte in chunk %d: err %v, %d bytes, matches digest %v, corrupt_cached %d, backend requests %d",
				map[bool]string{false: "uncompressed", true: "compressed"}[compressed], victim.Index, err, len(got), verified, m.CorruptCached, r.requests.Load())
			switch {
			case !compressed:
				// Served as is: one byte differs, nothing noticed.
				if err != nil || len(got) != len(want) || got[100] == want[100] || !bytes.Equal(got[:100], want[:100]) || !bytes.Equal(got[101:], want[101:]) {
					t.Fatalf("uncompressed cache without validation: err %v; want the flipped byte served as is", err)
				}
				if m.CorruptCached != 0 || r.requests.Load() != 0 {
					t.Fatalf("corrupt_cached %d, backend requests %d: the corruption was noticed", m.CorruptCached, r.requests.Load())
				}
			default:
				// zstd frames carry no checksum here: the flipped frame
				// decodes to other bytes of the right length, served.
				if err != nil || verified || len(got) != len(want) || m.CorruptCached != 0 {
					t.Fatalf("compressed cache without validation: err %v, verified %v, corrupt_cached %d; this test documents wrong bytes served", err, verified, m.CorruptCached)
				}
			}
		})
	}
}
