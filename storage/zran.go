package storage

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/targzref"
	"github.com/gonydus/nydus/rafs/zran"
)

// zranBlob is the read side of a zran blob (an unmodified gzip layer,
// upstream's targz-ref): a chunk's backend range runs from the start of
// its inflate context to the chunk's own end, and decoding inflates from
// the context start to the chunk's end, then verifies the digest.
type zranBlob struct {
	meta     *targzref.Meta
	inflated atomic.Uint64
	locks    zranLocks
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

// prefetchPlan groups chunks to prefetch into backend reads of about
// maxSpan bytes; a zran read never splits an inflate context (its chunks
// would fetch the context's start again).
func (b *Blob) prefetchPlan(chunks []*layout.ChunkInfo, maxSpan uint64) []*span {
	fl := make([]*flight, len(chunks))
	if b.zran == nil {
		return planSpans(chunks, fl, max(maxSpan, 1), 0)
	}
	return b.zranPlan(chunks, fl, maxSpan, func(c *layout.ChunkInfo, f *flight, err error) {})
}

// plan groups the chunks a reader leads into backend reads.
func (b *Blob) plan(chunks []*layout.ChunkInfo, fl []*flight) []*span {
	if b.zran == nil {
		spans := planSpans(chunks, fl, max(b.cfg.maxSpan, 1), 0)
		b.amplify(spans)
		return spans
	}
	out := b.zranPlan(chunks, fl, b.cfg.maxSpan, func(c *layout.ChunkInfo, f *flight, err error) {
		b.flights.finish(c.Index, f, nil, err)
	})
	for _, s := range out {
		b.zranSiblings(s)
	}
	return out
}

// zranPlan groups zran chunks by backend range: chunks of one context
// always share a read, chunks of overlapping or back-to-back contexts
// while the read stays within maxSpan. Chunks without a valid range go to
// fail.
func (b *Blob) zranPlan(chunks []*layout.ChunkInfo, fl []*flight, maxSpan uint64, fail func(*layout.ChunkInfo, *flight, error)) []*span {
	// Chunks sharing a context (their ranges overlap) are read together.
	type ext struct {
		off, end uint64
		i        int
	}
	var exts []ext
	for i, c := range chunks {
		off, end, err := b.extent(c)
		if err != nil {
			fail(c, fl[i], err)
			continue
		}
		exts = append(exts, ext{off, end, i})
	}
	slices.SortFunc(exts, func(a, b ext) int { return cmpU64(a.off, b.off) })
	var out []*span
	var cur *span
	var curCtx any
	for _, e := range exts {
		c := chunks[e.i]
		ctx, _, _ := b.zran.meta.Locate(c.Index)
		sameCtx := cur != nil && any(ctx) == curCtx
		curCtx = ctx
		if cur != nil && (sameCtx || (e.off <= cur.end && e.end-cur.off <= maxSpan)) {
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

// spanDecoder returns the decoder of the chunks of span s from its
// backend bytes buf: chunk by chunk for ordinary blobs; for a zran blob,
// the chunks sharing an inflate context are inflated together, once.
func (b *Blob) spanDecoder(s *span, buf []byte) func(i int, c *layout.ChunkInfo) (raw, data []byte, err error) {
	if b.zran == nil {
		return func(_ int, c *layout.ChunkInfo) ([]byte, []byte, error) { return b.decodeIn(c, buf, s.off) }
	}
	datas := make([][]byte, len(s.chunks))
	errs := make([]error, len(s.chunks))
	groups := map[any][]int{}
	var order []any
	for i, c := range s.chunks {
		ctx, _, err := b.zran.meta.Locate(c.Index)
		if err != nil {
			errs[i] = err
			continue
		}
		if _, ok := groups[ctx]; !ok {
			order = append(order, ctx)
		}
		groups[ctx] = append(groups[ctx], i)
	}
	for _, k := range order {
		idx := groups[k]
		cs := make([]*layout.ChunkInfo, len(idx))
		for j, i := range idx {
			cs[j] = s.chunks[i]
		}
		ds, es, n := b.zran.meta.DecodeRun(cs, buf, s.off)
		b.zran.inflated.Add(uint64(n))
		for j, i := range idx {
			datas[i], errs[i] = ds[j], es[j]
			if errs[i] != nil && errors.Is(errs[i], targzref.ErrDigestMismatch) {
				errs[i] = fmt.Errorf("%w: %w", ErrDigestMismatch, errs[i])
			}
			if errs[i] == nil {
				errs[i] = b.dec.verify(cs[j], datas[i], false)
			}
		}
	}
	return func(i int, _ *layout.ChunkInfo) ([]byte, []byte, error) {
		if errs[i] != nil {
			return nil, nil, errs[i]
		}
		return nil, datas[i], nil
	}
}

// zranContextSlack is how far a chunk's recorded compressed start may lie
// outside its context's range (contexts carry up to 64 bytes past their
// chunks' input; block starts are a few bytes before them).
const zranContextSlack = 64

// zranSiblings adds to span s every uncached chunk of the inflate contexts
// of its chunks, as upstream nydusd reads whole contexts (bounded by the
// context limits, rafs/zran.Limits): the context's start is then fetched
// and inflated once, not again for each of its chunks. It needs the chunk
// table and a cache.
func (b *Blob) zranSiblings(s *span) {
	if b.table == nil || b.cfg.cache == nil {
		return
	}
	in := make(map[uint32]bool, len(s.chunks))
	for _, c := range s.chunks {
		in[c.Index] = true
	}
	done := map[*zran.Context]bool{}
	for _, c := range append([]*layout.ChunkInfo(nil), s.chunks...) {
		p, ok := b.table.pos[c.Index]
		if !ok {
			continue
		}
		ctx, _, err := b.zran.meta.Locate(c.Index)
		if err != nil || done[ctx] {
			continue
		}
		done[ctx] = true
		add := func(d *layout.ChunkInfo) {
			if in[d.Index] {
				return
			}
			dctx, _, err := b.zran.meta.Locate(d.Index)
			if err != nil || dctx != ctx {
				return
			}
			off, end, err := b.extent(d)
			if err != nil || off < s.off || b.cfg.cache.Ready(d) {
				return
			}
			// A chunk another reader leads is decoded and cached here too
			// (its flight, nil here, stays with that reader, which waits
			// for this context's lock and then finds it cached): the
			// context's start is fetched once.
			in[d.Index] = true
			s.chunks = append(s.chunks, d)
			s.flights = append(s.flights, b.flights.lead(d.Index))
			s.end = max(s.end, end)
		}
		// The table is in compressed-offset order, where the last chunks of
		// one context and the first of the next interleave: walk the whole
		// compressed range of the context, skipping other contexts' chunks.
		lo, hi := ctx.In, ctx.In+uint64(ctx.InLen)+zranContextSlack
		for q := p - 1; q >= 0 && b.table.chunks[q].CompressedOffset+zranContextSlack >= lo; q-- {
			add(b.table.chunks[q])
		}
		for q := p + 1; q < len(b.table.chunks) && b.table.chunks[q].CompressedOffset < hi; q++ {
			add(b.table.chunks[q])
		}
	}
}
