package targzref

import (
	"fmt"
	"io"

	"github.com/gonydus/nydus/rafs/compress"
	"github.com/gonydus/nydus/rafs/layout"
)

// maxMetaSize bounds the uncompressed blob.meta data accepted (2^24
// chunks of 24 bytes plus contexts and dictionaries fit well within it).
const maxMetaSize = 1 << 30

// ReadMeta reads and checks the blob.meta of zran blob entry from its RAFS
// blob ra (size bytes): the ci data at entry.CIOffset and the header after
// it, which must match the entry.
func ReadMeta(ra io.ReaderAt, size int64, entry *layout.BlobEntry) (*Meta, error) {
	if entry.Features&layout.BlobZran == 0 {
		return nil, fmt.Errorf("%w: blob %s is not a zran blob (features %#x)", ErrMeta, entry.ID(), uint32(entry.Features))
	}
	stored := entry.CICompressedSize
	if entry.CIOffset > uint64(size) || stored+layout.CCTHeaderSize > uint64(size)-entry.CIOffset {
		return nil, fmt.Errorf("%w: blob %s: blob.meta at %d (+%d) outside the %d-byte RAFS blob", ErrMeta, entry.ID(), entry.CIOffset, stored, size)
	}
	if entry.CIUncompressedSize > maxMetaSize || stored > maxMetaSize {
		return nil, fmt.Errorf("%w: blob %s: %d bytes of blob.meta (%d stored)", ErrMeta, entry.ID(), entry.CIUncompressedSize, stored)
	}
	// size comes from the image too: read in steps, so that memory grows
	// only with bytes the blob really has.
	buf, err := readSpan(ra, int64(entry.CIOffset), int64(stored+layout.CCTHeaderSize))
	if err != nil {
		return nil, fmt.Errorf("targzref: blob %s: read blob.meta: %w", entry.ID(), err)
	}
	var h layout.CCTHeader
	if err := h.Unmarshal(buf[stored:]); err != nil {
		return nil, fmt.Errorf("%w: blob %s: %w", ErrMeta, entry.ID(), err)
	}
	if err := h.MatchesBlob(entry); err != nil {
		return nil, fmt.Errorf("%w: blob %s: %w", ErrMeta, entry.ID(), err)
	}
	data := buf[:stored]
	if h.CICompressor != layout.CompressNone {
		codec, err := compress.New(h.CICompressor)
		if err != nil {
			return nil, fmt.Errorf("%w: blob %s: %w", ErrMeta, entry.ID(), err)
		}
		if data, err = codec.Decompress(nil, data, int(h.CIUncompressedSize)); err != nil {
			return nil, fmt.Errorf("%w: blob %s: decompress blob.meta: %w", ErrMeta, entry.ID(), err)
		}
	}
	m, err := decodeMeta(h, data)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", entry.ID(), err)
	}
	for i := range m.Contexts {
		if m.Contexts[i].InEnd() > entry.CompressedSize {
			return nil, fmt.Errorf("%w: blob %s: context %d ends at %d, past the %d-byte layer", ErrMeta, entry.ID(), i, m.Contexts[i].InEnd(), entry.CompressedSize)
		}
	}
	for i := range m.Chunks {
		if c := &m.Chunks[i]; c.UncompressedOffset+uint64(c.UncompressedSize) > entry.UncompressedSize {
			return nil, fmt.Errorf("%w: blob %s: chunk %d ends past the blob's %d uncompressed bytes", ErrMeta, entry.ID(), i, entry.UncompressedSize)
		}
	}
	m.digester = entry.Digester
	m.layerSize = entry.CompressedSize
	m.blobID = entry.ID()
	return m, nil
}

// readStep is how much readSpan reads (and allocates) ahead of the bytes
// it has seen.
const readStep = 4 << 20

// readSpan reads n bytes at off from ra in steps of readStep, so that a
// span larger than ra's real size fails after allocating about what ra
// holds, not n.
func readSpan(ra io.ReaderAt, off, n int64) ([]byte, error) {
	buf := make([]byte, 0, min(n, readStep))
	for int64(len(buf)) < n {
		step := min(n-int64(len(buf)), readStep)
		buf = append(buf, make([]byte, step)...)
		if _, err := ra.ReadAt(buf[int64(len(buf))-step:], off+int64(len(buf))-step); err != nil {
			return nil, err
		}
	}
	return buf, nil
}
