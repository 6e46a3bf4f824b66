package storage

import (
	"slices"
	"sync"

	"github.com/gonydus/nydus/rafs/layout"
)

// zranStripes is how many locks the inflate contexts of a zran blob are
// spread over.
const zranStripes = 64

// zranLocks serialises fetches of the same inflate context: a zran chunk
// is read from its context's start, so two readers leading different
// chunks of one context would each fetch and inflate that start. The
// second waits for the first, which also caches the chunks the second
// leads (see zranSiblings), and then serves them from the cache.
type zranLocks struct {
	stripes [zranStripes]sync.Mutex
}

// lock takes the stripes of the contexts of chunks, in ascending order
// (no deadlock between spans covering several contexts), and returns the
// unlock function.
func (b *Blob) lockContexts(chunks []*layout.ChunkInfo) func() {
	var idx []int
	for _, c := range chunks {
		ctx, _, err := b.zran.meta.Locate(c.Index)
		if err != nil {
			continue
		}
		idx = append(idx, int(ctx.In/4096)%zranStripes)
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		b.zran.locks.stripes[i].Lock()
	}
	return func() {
		for _, i := range idx {
			b.zran.locks.stripes[i].Unlock()
		}
	}
}

// pruneCached drops from s the chunks another fetch cached while s waited
// for its contexts, finishing the flights s leads from the cache. It
// reports whether anything is left to fetch for a reader.
func (b *Blob) pruneCached(s *span) bool {
	if b.cfg.cache == nil {
		return true
	}
	var chunks []*layout.ChunkInfo
	var fl []*flight
	led := false
	for i, c := range s.chunks {
		f := s.flights[i]
		if b.cfg.cache.Ready(c) {
			if f == nil {
				continue
			}
			if data, ok := b.fromCache(c, nil); ok {
				b.flights.finish(c.Index, f, data, nil)
				continue
			}
		}
		chunks, fl = append(chunks, c), append(fl, f)
		led = led || f != nil
	}
	s.chunks, s.flights = chunks, fl
	return led
}
