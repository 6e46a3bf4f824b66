package targzref

import (
	"errors"
	"fmt"
	"io"

	"github.com/gonydus/nydus/rafs/digest"
	"github.com/gonydus/nydus/rafs/layout"
)

// ErrDigestMismatch reports chunk bytes inflated from the layer that do
// not match the chunk's digest (a corrupt or different layer).
var ErrDigestMismatch = errors.New("targzref: chunk digest mismatch")

// Span returns the byte range of the gzip layer chunk c needs: from the
// start of its inflate context to the end of its own compressed bytes.
func (m *Meta) Span(c *layout.ChunkInfo) (off, end uint64, err error) {
	ci, ctx, _, err := m.context(c.Index)
	if err != nil {
		return 0, 0, err
	}
	if ci.UncompressedOffset != c.UncompressedOffset || ci.UncompressedSize != c.UncompressedSize {
		return 0, 0, fmt.Errorf("%w: blob %s chunk %d: bootstrap says %d+%d, blob.meta %d+%d", ErrMeta, m.blobID, c.Index,
			c.UncompressedOffset, c.UncompressedSize, ci.UncompressedOffset, ci.UncompressedSize)
	}
	return ctx.In, ci.CompressedOffset + uint64(ci.CompressedSize), nil
}

// Decode inflates chunk c from raw, the layer bytes Span named, and
// verifies the chunk's digest. inflated is the number of bytes inflated:
// the chunk's offset in its context plus its size.
func (m *Meta) Decode(c *layout.ChunkInfo, raw []byte) (data []byte, inflated int, err error) {
	off, end, err := m.Span(c)
	if err != nil {
		return nil, 0, err
	}
	if uint64(len(raw)) != end-off {
		return nil, 0, fmt.Errorf("%w: blob %s chunk %d: %d layer bytes, want %d", ErrMeta, m.blobID, c.Index, len(raw), end-off)
	}
	_, ctx, zoff, _ := m.context(c.Index)
	data = make([]byte, c.UncompressedSize)
	n, err := ctx.InflateAt(raw, int(zoff), data)
	if err != nil {
		return nil, n, fmt.Errorf("%w: blob %s chunk %d: %w", ErrDigestMismatch, m.blobID, c.Index, err)
	}
	if got := digest.Sum(m.digester, data); got != c.Digest {
		return nil, n, fmt.Errorf("%w: blob %s chunk %d: got %x, want %x", ErrDigestMismatch, m.blobID, c.Index, got[:8], c.Digest[:8])
	}
	return data, n, nil
}

// ReadChunk reads chunk c from the gzip layer: one range read from the
// chunk's context start to its end, inflated and verified.
func (m *Meta) ReadChunk(layer io.ReaderAt, c *layout.ChunkInfo) ([]byte, error) {
	off, end, err := m.Span(c)
	if err != nil {
		return nil, err
	}
	raw := make([]byte, end-off)
	if k, err := layer.ReadAt(raw, int64(off)); err != nil && !(errors.Is(err, io.EOF) && k == len(raw)) {
		return nil, fmt.Errorf("targzref: blob %s: read layer %d+%d: %w", m.blobID, off, len(raw), err)
	}
	data, _, err := m.Decode(c, raw)
	return data, err
}
