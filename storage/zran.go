package storage

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/targzref"
)

// zranBlob is the read side of a zran blob (an unmodified gzip layer,
// upstream's targz-ref): a chunk's backend range runs from the start of
// its inflate context to the chunk's own end, and decoding inflates from
// the context start to the chunk's end, then verifies the digest.
type zranBlob struct {
	meta     *targzref.Meta
	inflated atomic.Uint64
}

// WithZranMeta gives the blob.meta (chunk infos and inflate contexts) of a
// zran blob, read from its RAFS blob; NewBlob requires it for blobs with
// the ZRAN feature.
func WithZranMeta(m *targzref.Meta) Option {
	return func(b *blobConfig) error {
		if m == nil {
			return errors.New("storage: nil zran meta")
		}
		b.zranMeta = m
		return nil
	}
}

// newBlobDecoder returns the decoder of entry and, for a zran blob, its
// zran reader.
func newBlobDecoder(entry *layout.BlobEntry, cfg *blobConfig) (*decoder, *zranBlob, error) {
	if entry.Features&layout.BlobZran == 0 {
		d, err := newDecoder(entry)
		return d, nil, err
	}
	switch {
	case cfg.zranMeta == nil:
		return nil, nil, fmt.Errorf("storage: zran blob %s: its blob.meta is needed (WithZranMeta)", entry.ID())
	case cfg.cache != nil && cfg.cache.Compressed():
		return nil, nil, fmt.Errorf("storage: zran blob %s: chunks cannot be cached compressed (they are inflated from shared contexts)", entry.ID())
	}
	// Only verify is used for zran chunks (CRC-32C and digest of cached data).
	return &decoder{blob: entry}, &zranBlob{meta: cfg.zranMeta}, nil
}

// ZranInflated returns how many bytes the blob inflated from zran contexts
// (0 for other blobs): each chunk read inflates from its context start.
func (b *Blob) ZranInflated() uint64 {
	if b.zran == nil {
		return 0
	}
	return b.zran.inflated.Load()
}

// extent returns the backend byte range chunk c is read from.
func (b *Blob) extent(c *layout.ChunkInfo) (off, end uint64, err error) {
	if b.zran == nil {
		return c.CompressedOffset, chunkEnd(c), nil
	}
	off, end, err = b.zran.meta.Span(c)
	if err == nil && (end <= off || end > b.entry.CompressedSize) {
		err = fmt.Errorf("%w: blob %s chunk %d range %d..%d", ErrBadChunk, b.id, c.Index, off, end)
	}
	return off, end, err
}

// plan groups the chunks a reader leads into backend reads.
func (b *Blob) plan(chunks []*layout.ChunkInfo, fl []*flight) []*span {
	if b.zran == nil {
		spans := planSpans(chunks, fl, max(b.cfg.maxSpan, 1), 0)
		b.amplify(spans)
		return spans
	}
	// Chunks sharing a context (their ranges overlap) are read together.
	type ext struct {
		off, end uint64
		i        int
	}
	var exts []ext
	for i, c := range chunks {
		off, end, err := b.extent(c)
		if err != nil {
			b.flights.finish(c.Index, fl[i], nil, err)
			continue
		}
		exts = append(exts, ext{off, end, i})
	}
	slices.SortFunc(exts, func(a, b ext) int { return cmpU64(a.off, b.off) })
	var out []*span
	var cur *span
	for _, e := range exts {
		c := chunks[e.i]
		if cur != nil && (e.off < cur.end || (e.off == cur.end && e.end-cur.off <= b.cfg.maxSpan)) {
			cur.chunks = append(cur.chunks, c)
			cur.flights = append(cur.flights, fl[e.i])
			cur.end = max(cur.end, e.end)
			continue
		}
		cur = &span{off: e.off, end: e.end, chunks: []*layout.ChunkInfo{c}, flights: []*flight{fl[e.i]}}
		out = append(out, cur)
	}
	return out
}

// chunkSpan is the backend read of chunk c alone; on a bad chunk its
// flight is failed and nil returned.
func (b *Blob) chunkSpan(c *layout.ChunkInfo, f *flight) *span {
	off, end, err := b.extent(c)
	if err != nil {
		b.flights.finish(c.Index, f, nil, err)
		return nil
	}
	return &span{off: off, end: end, chunks: []*layout.ChunkInfo{c}, flights: []*flight{f}}
}

// decodeIn decodes and verifies chunk c from buf, the backend bytes of a
// span starting at off. raw is the chunk's stored form (nil for zran
// chunks, which have none of their own).
func (b *Blob) decodeIn(c *layout.ChunkInfo, buf []byte, off uint64) (raw, data []byte, err error) {
	if b.zran == nil {
		raw = buf[c.CompressedOffset-off : chunkEnd(c)-off]
		data, err = b.dec.decode(c, raw, nil, true)
		return raw, data, err
	}
	start, end, err := b.extent(c)
	if err != nil {
		return nil, nil, err
	}
	if start < off || end-off > uint64(len(buf)) {
		return nil, nil, fmt.Errorf("%w: blob %s chunk %d range %d..%d outside the read %d+%d", ErrBadChunk, b.id, c.Index, start, end, off, len(buf))
	}
	data, n, err := b.zran.meta.Decode(c, buf[start-off:end-off])
	b.zran.inflated.Add(uint64(n))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrDigestMismatch, err)
	}
	if err := b.dec.verify(c, data, false); err != nil {
		return nil, nil, err
	}
	return nil, data, nil
}
