package targzref

import (
	"errors"
	"fmt"
	"math"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/zran"
)

// ErrMeta reports a RAFS blob whose blob.meta is malformed or does not
// match its blob-table entry.
var ErrMeta = errors.New("targzref: invalid zran blob.meta")

// Meta is the decoded blob.meta of a zran blob: the chunk-info v2 array
// (by chunk-info index) and the inflate contexts it refers to.
type Meta struct {
	Header   layout.CCTHeader
	Chunks   []layout.BlobChunk
	Contexts []zran.Context

	digester  layout.Digester
	blobID    string
	layerSize uint64
}

// Features every zran blob carries (upstream sets them for targz-ref).
const zranFeatures = layout.BlobAligned | layout.BlobChunkInfoV2 | layout.BlobZran | layout.BlobSeparate

// encodeCI lays out the uncompressed blob.meta data: the v2 chunk-info
// array, then the context table and dictionaries.
func encodeCI(chunks []layout.BlobChunk, ctxs []zran.Context) ([]byte, error) {
	ci := make([]byte, len(chunks)*layout.ChunkInfoV2Size)
	for i := range chunks {
		if err := chunks[i].MarshalV2(ci[i*layout.ChunkInfoV2Size:]); err != nil {
			return nil, fmt.Errorf("targzref: chunk %d: %w", i, err)
		}
	}
	return append(ci, zran.EncodeContexts(ctxs)...), nil
}

// decodeMeta parses the uncompressed blob.meta data against its header.
func decodeMeta(h layout.CCTHeader, data []byte) (*Meta, error) {
	n := uint64(h.CIEntries)
	switch {
	case h.Features&layout.BlobZran == 0 || h.Features&layout.BlobChunkInfoV2 == 0:
		return nil, fmt.Errorf("%w: header features %#x lack ZRAN or CHUNK_INFO_V2", ErrMeta, uint32(h.Features))
	case n == 0 || n > layout.MaxChunksPerBlob:
		return nil, fmt.Errorf("%w: %d chunks", ErrMeta, n)
	case uint64(len(data)) != h.CIUncompressedSize || n*layout.ChunkInfoV2Size > uint64(len(data)):
		return nil, fmt.Errorf("%w: %d bytes of chunk info for %d chunks (header says %d)", ErrMeta, len(data), n, h.CIUncompressedSize)
	case h.ExtOffset != n*layout.ChunkInfoV2Size:
		return nil, fmt.Errorf("%w: zran table at %d, want %d", ErrMeta, h.ExtOffset, n*layout.ChunkInfoV2Size)
	case h.ExtSize > uint64(len(data))-h.ExtOffset || uint64(h.ExtCount) > n || uint64(h.ExtCount)*zran.ContextSize > h.ExtSize:
		return nil, fmt.Errorf("%w: zran table of %d bytes, %d contexts", ErrMeta, h.ExtSize, h.ExtCount)
	}
	ctxs, err := zran.DecodeContexts(data[h.ExtOffset:h.ExtOffset+h.ExtSize], int(h.ExtCount))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMeta, err)
	}
	m := &Meta{Header: h, Chunks: make([]layout.BlobChunk, n), Contexts: ctxs}
	for i := range m.Chunks {
		c := &m.Chunks[i]
		if err := c.UnmarshalV2(data[i*layout.ChunkInfoV2Size:]); err != nil {
			return nil, fmt.Errorf("%w: chunk %d: %w", ErrMeta, i, err)
		}
		if c.Flags&layout.CIv2Zran == 0 {
			return nil, fmt.Errorf("%w: chunk %d is not a zran chunk", ErrMeta, i)
		}
		ci, off := c.Data>>32, c.Data&math.MaxUint32
		if ci >= uint64(len(ctxs)) {
			return nil, fmt.Errorf("%w: chunk %d names context %d of %d", ErrMeta, i, ci, len(ctxs))
		}
		ctx := &ctxs[ci]
		if off+uint64(c.UncompressedSize) > uint64(ctx.OutLen) {
			return nil, fmt.Errorf("%w: chunk %d (%d+%d) outside context %d (%d bytes)", ErrMeta, i, off, c.UncompressedSize, ci, ctx.OutLen)
		}
		if end := c.CompressedOffset + uint64(c.CompressedSize); c.CompressedOffset < ctx.In || end > ctx.InEnd() {
			return nil, fmt.Errorf("%w: chunk %d compressed range %d+%d outside context %d", ErrMeta, i, c.CompressedOffset, c.CompressedSize, ci)
		}
	}
	return m, nil
}

// context returns chunk i's context and its offset in the context output.
func (m *Meta) context(i uint32) (*layout.BlobChunk, *zran.Context, uint32, error) {
	if uint64(i) >= uint64(len(m.Chunks)) {
		return nil, nil, 0, fmt.Errorf("%w: chunk index %d of %d", ErrMeta, i, len(m.Chunks))
	}
	c := &m.Chunks[i]
	return c, &m.Contexts[c.Data>>32], uint32(c.Data), nil
}

// Locate returns the inflate context chunk-info index i is read from and
// the chunk's offset in the context's output: a read of the chunk fetches
// the layer from ctx.In to the chunk's compressed end and inflates
// offset+size bytes.
func (m *Meta) Locate(i uint32) (*zran.Context, uint32, error) {
	_, ctx, off, err := m.context(i)
	return ctx, off, err
}
