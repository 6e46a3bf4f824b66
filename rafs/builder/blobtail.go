package builder

import (
	"crypto/sha256"
	"fmt"

	"github.com/gonydus/nydus/rafs/compress"
	"github.com/gonydus/nydus/rafs/layout"
)

// tailWriter writes everything after the chunk data: section headers, the
// chunk-info array with its blob.meta header, the chunk digests, an optional
// inline bootstrap and the ToC.
type tailWriter struct {
	b   *BlobWriter
	toc []layout.TOCEntry
}

func tocFlags(c layout.Compressor) uint32 {
	switch c {
	case layout.CompressZstd:
		return layout.TOCCompressZstd
	case layout.CompressLZ4:
		return layout.TOCCompressLZ4
	}
	return layout.TOCCompressNone
}

func (t *tailWriter) write(inline InlineBootstrap) (*BlobResult, error) {
	b, out := t.b, t.b.out
	chunkBytes := out.n
	framed := b.cfg.toc || inline != nil
	entry := layout.BlobEntry{
		BlobIndex:        b.cfg.blobIndex,
		ChunkSize:        b.cfg.chunkSize,
		ChunkCount:       uint32(len(b.unique)),
		Compressor:       b.cfg.compressor,
		Digester:         b.cfg.digester,
		Features:         layout.BlobAligned | layout.BlobCapTarTOC,
		UncompressedSize: b.uoff,
	}
	if framed {
		entry.Features |= layout.BlobHasTarHeader
	}
	if b.cfg.toc {
		entry.Features |= layout.BlobHasTOC
	}
	hasChunks := len(b.unique) > 0
	if hasChunks && framed {
		if err := t.section(layout.SectionBlob, nil); err != nil {
			return nil, err
		}
		if b.cfg.toc {
			var sum [32]byte
			copy(sum[:], out.hash.Sum(nil))
			t.toc = append(t.toc, layout.TOCEntry{Flags: layout.TOCCompressNone, Name: layout.SectionBlob,
				UncompressedHash: sum, CompressedOffset: 0, CompressedSize: chunkBytes, UncompressedSize: b.uoff})
		}
	}
	if hasChunks {
		if err := t.writeMeta(&entry, framed); err != nil {
			return nil, err
		}
	}
	if inline != nil {
		entry.Features |= layout.BlobInlinedFSMeta
		embedded := entry
		embedded.SetID(PlaceholderBlobID)
		embedded.CompressedSize = out.n
		boot, err := inline(&embedded)
		if err != nil {
			return nil, fmt.Errorf("builder: inline bootstrap: %w", err)
		}
		if err := t.writeInlineBootstrap(boot); err != nil {
			return nil, err
		}
	}
	if b.cfg.toc {
		buf := make([]byte, len(t.toc)*layout.TOCEntrySize)
		for i := range t.toc {
			t.toc[i].Marshal(buf[i*layout.TOCEntrySize:])
		}
		if _, err := out.Write(buf); err != nil {
			return nil, fmt.Errorf("builder: write blob ToC: %w", err)
		}
		hdr := layout.SectionHeader(layout.SectionTOC, uint64(len(buf)))
		if _, err := out.Write(hdr[:]); err != nil {
			return nil, fmt.Errorf("builder: write blob ToC: %w", err)
		}
		entry.TOCDigest = sha256.Sum256(append(buf, hdr[:]...))
		entry.TOCSize = uint32(len(buf) + layout.TarHeaderSize)
	}
	entry.CompressedSize = out.n
	entry.SetID(hexID(out.hash))
	for _, c := range b.unique {
		c.BlobIndex = b.cfg.blobIndex
	}
	return &BlobResult{Entry: entry, Chunks: b.unique, Size: out.n}, nil
}

// section writes a section's tar header after its data.
func (t *tailWriter) section(name string, data []byte) error {
	if data != nil {
		if _, err := t.b.out.Write(data); err != nil {
			return fmt.Errorf("builder: write blob section %s: %w", name, err)
		}
	}
	size := uint64(len(data))
	if name == layout.SectionBlob {
		size = t.b.out.n
	}
	hdr := layout.SectionHeader(name, size)
	if _, err := t.b.out.Write(hdr[:]); err != nil {
		return fmt.Errorf("builder: write blob section %s: %w", name, err)
	}
	return nil
}

func (t *tailWriter) writeMeta(entry *layout.BlobEntry, framed bool) error {
	b, out := t.b, t.b.out
	ci := make([]byte, len(b.unique)*layout.ChunkInfoV1Size)
	for i, c := range b.unique {
		bc := layout.BlobChunk{
			UncompressedOffset: c.UncompressedOffset, UncompressedSize: c.UncompressedSize,
			CompressedOffset: c.CompressedOffset, CompressedSize: c.CompressedSize,
		}
		if err := bc.MarshalV1(ci[i*layout.ChunkInfoV1Size:]); err != nil {
			return fmt.Errorf("builder: chunk %d: %w", i, err)
		}
	}
	ciComp := b.cfg.compressor
	stored := ci
	if ciComp != layout.CompressNone {
		c, err := b.codec.Compress(nil, ci)
		if err == nil && len(c) < len(ci) {
			stored = c
		} else {
			ciComp = layout.CompressNone
		}
	}
	if b.cfg.toc {
		entry.Features |= layout.BlobInlinedChunkDigest
	}
	entry.CICompressor = ciComp
	entry.CIOffset = out.n
	entry.CICompressedSize = uint64(len(stored))
	entry.CIUncompressedSize = uint64(len(ci))
	hdr := layout.CCTHeader{
		Features: entry.Features, CICompressor: ciComp, CIEntries: entry.ChunkCount,
		CIOffset: entry.CIOffset, CICompressedSize: entry.CICompressedSize, CIUncompressedSize: entry.CIUncompressedSize,
	}
	var hb [layout.CCTHeaderSize]byte
	hdr.Marshal(hb[:])
	if _, err := out.Write(stored); err != nil {
		return fmt.Errorf("builder: write blob.meta: %w", err)
	}
	if _, err := out.Write(hb[:]); err != nil {
		return fmt.Errorf("builder: write blob.meta: %w", err)
	}
	if framed {
		h := layout.SectionHeader(layout.SectionMeta, uint64(len(stored)+len(hb)))
		if _, err := out.Write(h[:]); err != nil {
			return fmt.Errorf("builder: write blob.meta: %w", err)
		}
	}
	if !b.cfg.toc {
		return nil
	}
	t.toc = append(t.toc,
		layout.TOCEntry{Flags: tocFlags(ciComp), Name: layout.SectionMeta, UncompressedHash: sha256.Sum256(ci),
			CompressedOffset: entry.CIOffset, CompressedSize: uint64(len(stored)), UncompressedSize: uint64(len(ci))},
		layout.TOCEntry{Flags: layout.TOCCompressNone, Name: layout.SectionMetaHeader, UncompressedHash: sha256.Sum256(hb[:]),
			CompressedOffset: entry.CIOffset + uint64(len(stored)), CompressedSize: layout.CCTHeaderSize, UncompressedSize: layout.CCTHeaderSize})
	digests := make([]byte, 0, len(b.unique)*32)
	for _, c := range b.unique {
		digests = append(digests, c.Digest[:]...)
	}
	off := out.n
	if err := t.section(layout.SectionDigest, digests); err != nil {
		return err
	}
	t.toc = append(t.toc, layout.TOCEntry{Flags: layout.TOCCompressNone, Name: layout.SectionDigest,
		UncompressedHash: sha256.Sum256(digests), CompressedOffset: off, CompressedSize: uint64(len(digests)), UncompressedSize: uint64(len(digests))})
	return nil
}

func (t *tailWriter) writeInlineBootstrap(boot []byte) error {
	off := t.b.out.n
	stored, alg := boot, layout.CompressNone
	if t.b.cfg.toc {
		z, err := compress.New(layout.CompressZstd)
		if err != nil {
			return err
		}
		c, err := z.Compress(nil, boot)
		if err != nil {
			return fmt.Errorf("builder: compress bootstrap: %w", err)
		}
		// Upstream stores the zstd form whenever ToC is on; it records
		// "none" if zstd did not shrink it but still writes its output, so
		// we store raw in that case to keep the ToC truthful.
		if len(c) < len(boot) {
			stored, alg = c, layout.CompressZstd
		}
	}
	if err := t.section(layout.SectionBootstrap, stored); err != nil {
		return err
	}
	if t.b.cfg.toc {
		t.toc = append(t.toc, layout.TOCEntry{Flags: tocFlags(alg), Name: layout.SectionBootstrap,
			UncompressedHash: sha256.Sum256(boot), CompressedOffset: off, CompressedSize: uint64(len(stored)), UncompressedSize: uint64(len(boot))})
	}
	return nil
}
