package targzref

import (
	"errors"
	"fmt"
	"io"

	"github.com/gonydus/nydus/rafs/digest"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/zran"
)

// ErrDigestMismatch reports chunk bytes inflated from the layer that do
// not match the chunk's digest (a corrupt or different layer).
var ErrDigestMismatch = errors.New("targzref: chunk digest mismatch")

// Span returns the byte range of the gzip layer chunk c needs: from the
// start of its inflate context to the end of its own compressed bytes
// (plus zran.ReadSlack bytes, within the layer).
func (m *Meta) Span(c *layout.ChunkInfo) (off, end uint64, err error) {
	ci, ctx, _, err := m.context(c.Index)
	if err != nil {
		return 0, 0, err
	}
	if ci.UncompressedOffset != c.UncompressedOffset || ci.UncompressedSize != c.UncompressedSize {
		return 0, 0, fmt.Errorf("%w: blob %s chunk %d: bootstrap says %d+%d, blob.meta %d+%d", ErrMeta, m.blobID, c.Index,
			c.UncompressedOffset, c.UncompressedSize, ci.UncompressedOffset, ci.UncompressedSize)
	}
	end = ci.CompressedOffset + uint64(ci.CompressedSize)
	return ctx.In, max(end, min(end+zran.ReadSlack, m.layerSize)), nil
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

// DecodeRun decodes chunks that share one inflate context in a single
// inflation from the context start to the furthest chunk end: raw holds
// the layer bytes from rawOff and must cover every chunk's Span. It
// returns each chunk's verified bytes or its error, and the number of
// bytes inflated.
func (m *Meta) DecodeRun(chunks []*layout.ChunkInfo, raw []byte, rawOff uint64) ([][]byte, []error, int) {
	datas, errs := make([][]byte, len(chunks)), make([]error, len(chunks))
	var ctx *zran.Context
	var inEnd uint64
	outEnd := 0
	offs := make([]uint32, len(chunks))
	for i, c := range chunks {
		off, end, err := m.Span(c)
		if err == nil && (off < rawOff || end-rawOff > uint64(len(raw))) {
			err = fmt.Errorf("%w: blob %s chunk %d range %d..%d outside the %d bytes read at %d", ErrMeta, m.blobID, c.Index, off, end, len(raw), rawOff)
		}
		var cctx *zran.Context
		if err == nil {
			cctx, offs[i], err = m.Locate(c.Index)
		}
		if err == nil && ctx != nil && cctx != ctx {
			err = fmt.Errorf("targzref: DecodeRun: chunk %d is in another context", c.Index)
		}
		if err != nil {
			errs[i] = err
			continue
		}
		ctx = cctx
		inEnd = max(inEnd, end)
		outEnd = max(outEnd, int(offs[i])+int(c.UncompressedSize))
	}
	if ctx == nil {
		return datas, errs, 0
	}
	out := make([]byte, outEnd)
	n, ierr := ctx.Inflate(raw[ctx.In-rawOff:inEnd-rawOff], out)
	for i, c := range chunks {
		if errs[i] != nil {
			continue
		}
		end := int(offs[i]) + int(c.UncompressedSize)
		if end > n {
			errs[i] = fmt.Errorf("%w: blob %s chunk %d: %w", ErrDigestMismatch, m.blobID, c.Index, ierr)
			continue
		}
		data := append([]byte(nil), out[offs[i]:end]...)
		if got := digest.Sum(m.digester, data); got != c.Digest {
			errs[i] = fmt.Errorf("%w: blob %s chunk %d: got %x, want %x", ErrDigestMismatch, m.blobID, c.Index, got[:8], c.Digest[:8])
			continue
		}
		datas[i] = data
	}
	return datas, errs, n
}
