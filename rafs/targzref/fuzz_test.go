package targzref

import (
	"bytes"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs/layout"
)

// FuzzDecodeMeta feeds arbitrary uncompressed blob.meta data (seeded with
// a real one) to the parser and reads the chunks it accepts from the seed
// layer: nothing may panic, and whatever is served must verify.
func FuzzDecodeMeta(f *testing.F) {
	gz := testutil.ReadTestdata(f, "upstream-nydus", "zran", "zran-two-streams.tar.gz")
	b := build(f, gz, WithChunkSize(0x1000))
	m, err := ReadMeta(bytes.NewReader(b.meta), int64(len(b.meta)), b.img.Blobs()[0])
	if err != nil {
		f.Fatal(err)
	}
	ci, err := encodeCI(m.Chunks, m.Contexts)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ci, m.Header.CIEntries, m.Header.ExtCount, m.Header.ExtSize)
	f.Fuzz(func(t *testing.T, data []byte, n, extCount uint32, extSize uint64) {
		h := layout.CCTHeader{Features: zranFeatures, CIEntries: n % 4096, CIUncompressedSize: uint64(len(data)),
			ExtOffset: uint64(n%4096) * layout.ChunkInfoV2Size, ExtSize: extSize, ExtCount: extCount}
		m, err := decodeMeta(h, data)
		if err != nil {
			return
		}
		m.digester, m.blobID = layout.DigestSHA256, "fuzz"
		for i := range min(len(m.Chunks), 4) {
			bc := &m.Chunks[i]
			c := &layout.ChunkInfo{Index: uint32(i), UncompressedOffset: bc.UncompressedOffset, UncompressedSize: bc.UncompressedSize}
			if i < len(b.res.Chunks) {
				c.Digest = b.res.Chunks[i].Digest
			}
			if _, err := m.ReadChunk(bytes.NewReader(gz), c); err == nil && (i >= len(b.res.Chunks) || c.Digest != b.res.Chunks[i].Digest) {
				t.Fatalf("chunk %d served unverified", i)
			}
		}
	})
}
