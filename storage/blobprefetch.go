package storage

import (
	"context"
	"errors"

	"github.com/gonydus/nydus/rafs/layout"
)

// PrefetchResult counts what one Prefetch call fetched.
type PrefetchResult struct {
	Requests int    // backend reads
	Chunks   int    // chunks fetched and cached
	Bytes    uint64 // compressed bytes fetched
}

// Prefetch fetches the chunks that are neither cached nor being fetched
// into the cache, at background priority, in merged backend reads of at
// most maxSpan bytes. A slot of the gate is taken before any chunk is
// claimed, so user reads never wait behind a prefetch that is itself
// waiting. Without a cache Prefetch does nothing.
func (b *Blob) Prefetch(ctx context.Context, chunks []*layout.ChunkInfo, maxSpan uint64) (PrefetchResult, error) {
	var res PrefetchResult
	if b.cfg.cache == nil {
		return res, nil
	}
	if b.closed.Load() {
		return res, ErrClosed
	}
	var todo []*layout.ChunkInfo
	for _, c := range chunks {
		if checkChunk(b.entry, c) != nil || b.cfg.cache.Ready(c) || b.flights.busy(c.Index) {
			continue
		}
		todo = append(todo, c)
	}
	var errs []error
	for _, s := range b.prefetchPlan(todo, maxSpan) {
		if err := b.cfg.gate.Acquire(ctx, PriorityPrefetch); err != nil {
			return res, errors.Join(append(errs, err)...)
		}
		for _, run := range b.claim(s) {
			res.Requests++
			res.Chunks += len(run.chunks)
			res.Bytes += run.end - run.off
			if err := b.readSpan(ctx, run); err != nil {
				errs = append(errs, err)
			}
		}
		b.cfg.gate.Release(PriorityPrefetch)
	}
	return res, errors.Join(errs...)
}

// claim leads the flights of the chunks of s that are still uncached and
// unclaimed, and returns them as runs of back-to-back chunks.
func (b *Blob) claim(s *span) []*span {
	var runs []*span
	var cur *span
	for _, c := range s.chunks {
		var f *flight
		if !b.cfg.cache.Ready(c) {
			f = b.flights.lead(c.Index)
		}
		if f != nil && b.cfg.cache.Ready(c) {
			// Cached by another reader since the check above (if the
			// cached copy fails verification, fetch it after all).
			if data, ok := b.fromCache(c, nil); ok {
				b.flights.finish(c.Index, f, data, nil)
				f = nil
			}
		}
		if f == nil {
			cur = nil
			continue
		}
		off, end, err := b.extent(c)
		if err != nil {
			b.flights.finish(c.Index, f, nil, err)
			cur = nil
			continue
		}
		// Back-to-back chunks share a read; so do zran chunks whose
		// ranges overlap (they share an inflate context).
		if cur == nil || (off != cur.end && !(b.zran != nil && off < cur.end && off >= cur.off)) {
			cur = &span{off: off}
			runs = append(runs, cur)
		}
		cur.chunks = append(cur.chunks, c)
		cur.flights = append(cur.flights, f)
		cur.end = max(cur.end, end)
	}
	return runs
}
