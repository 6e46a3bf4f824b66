package layout

import (
	"bytes"
	"testing"
)

// FuzzCCTHeader decodes fuzzed blob.meta headers and checks them against a
// fuzzed blob entry: an accepted header re-encodes to bytes that decode to
// the same header (and to the input's bytes where the input's compressor
// is a known one), and MatchesBlob accepts exactly the entries that agree
// with it on every field it compares.
func FuzzCCTHeader(f *testing.F) {
	h := CCTHeader{Features: BlobZran | BlobChunkInfoV2 | BlobSeparate, CICompressor: CompressZstd, CIEntries: 3,
		CIOffset: 4096, CICompressedSize: 57, CIUncompressedSize: 208, ExtOffset: 72, ExtSize: 136, ExtCount: 2}
	seed := make([]byte, CCTHeaderSize)
	h.Marshal(seed)
	e := BlobEntry{ChunkCount: 3, CICompressor: CompressZstd, CIOffset: 4096, CICompressedSize: 57, CIUncompressedSize: 208}
	eb := make([]byte, BlobEntrySize)
	e.Marshal(eb)
	f.Add(seed, eb)
	f.Add(seed[:100], eb)
	f.Fuzz(func(t *testing.T, b, entry []byte) {
		var h CCTHeader
		if err := h.Unmarshal(b); err != nil {
			return
		}
		out := make([]byte, CCTHeaderSize)
		h.Marshal(out)
		var again CCTHeader
		if err := again.Unmarshal(out); err != nil || again != h {
			t.Fatalf("re-encoded header decodes to %+v (%v), want %+v", again, err, h)
		}
		if Compressor(le.Uint32(b[8:])) <= CompressZstd && !bytes.Equal(out[:60], b[:60]) {
			t.Fatalf("re-encoded header % x differs from % x", out[:60], b[:60])
		}
		var e BlobEntry
		if len(entry) < BlobEntrySize || e.Unmarshal(entry) != nil {
			return
		}
		agree := h.CIEntries == e.ChunkCount && h.CICompressor == e.CICompressor && h.CIOffset == e.CIOffset &&
			h.CICompressedSize == e.CICompressedSize && h.CIUncompressedSize == e.CIUncompressedSize
		if err := h.MatchesBlob(&e); (err == nil) != agree {
			t.Fatalf("MatchesBlob = %v for header %+v and entry %+v", err, h, e)
		}
	})
}
