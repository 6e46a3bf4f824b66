package targzref

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs/layout"
)

// FuzzReadMeta reads a fuzzed RAFS blob through ReadMeta with a fuzzed blob
// entry (every field of the blob table entry) and a claimed blob size that
// may exceed the bytes really there, seeded with a real zran blob.meta and
// its entry. Nothing may panic or allocate much beyond what the blob holds;
// what is accepted must be consistent with the entry, and chunks read from
// the seed layer through it must verify.
func FuzzReadMeta(f *testing.F) {
	gz, err := os.ReadFile(filepath.Join(vectors, "zran-two-streams.tar.gz"))
	if err != nil {
		testutil.Missing(f, "upstream test vector (%v): put the shared testdata at ../shared/testdata beside the repository or set %s", err, testutil.TestdataEnv)
	}
	b := build(f, gz, WithChunkSize(0x1000))
	entry := make([]byte, layout.BlobEntrySize)
	b.img.Blobs()[0].Marshal(entry)
	f.Add(b.meta, entry, int64(0))
	f.Add(b.meta[:len(b.meta)/2], entry, int64(len(b.meta)))
	f.Add(b.meta, entry, int64(1<<40))
	f.Fuzz(func(t *testing.T, meta, entryBytes []byte, extra int64) {
		if len(entryBytes) < layout.BlobEntrySize || len(meta) > 4<<20 {
			return
		}
		var e layout.BlobEntry
		if err := e.Unmarshal(entryBytes); err != nil {
			return
		}
		// The size the image claims for the blob: anything from the real
		// length up to 1 TiB more.
		size := int64(len(meta)) + max(extra, 0)%(1<<40)
		m, err := ReadMeta(bytes.NewReader(meta), size, &e)
		if err != nil {
			return
		}
		if err := m.Header.MatchesBlob(&e); err != nil {
			t.Fatalf("accepted a header that does not match its entry: %v", err)
		}
		if uint64(len(m.Chunks)) != uint64(e.ChunkCount) {
			t.Fatalf("%d chunks for an entry of %d", len(m.Chunks), e.ChunkCount)
		}
		for i := range m.Chunks {
			if c := &m.Chunks[i]; c.UncompressedOffset+uint64(c.UncompressedSize) > e.UncompressedSize {
				t.Fatalf("chunk %d ends past the blob", i)
			}
		}
		for i := range min(len(m.Chunks), 4) {
			bc := &m.Chunks[i]
			c := &layout.ChunkInfo{Index: uint32(i), UncompressedOffset: bc.UncompressedOffset, UncompressedSize: bc.UncompressedSize}
			if i < len(b.res.Chunks) {
				c.Digest = b.res.Chunks[i].Digest
			}
			data, err := m.ReadChunk(bytes.NewReader(gz), c)
			if err != nil {
				continue
			}
			if i >= len(b.res.Chunks) || c.Digest != b.res.Chunks[i].Digest || len(data) != int(c.UncompressedSize) {
				t.Fatalf("chunk %d served unverified", i)
			}
		}
	})
}
