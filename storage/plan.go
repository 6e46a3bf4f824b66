package storage

import (
	"slices"

	"github.com/gonydus/nydus/rafs/layout"
)

// span is one backend read: a compressed byte range holding chunks.
type span struct {
	off, end uint64
	chunks   []*layout.ChunkInfo
	flights  []*flight
}

func chunkEnd(c *layout.ChunkInfo) uint64 { return c.CompressedOffset + uint64(c.CompressedSize) }

// planSpans groups chunks (each with its flight) into backend reads: chunks
// sorted by compressed offset join the previous read when the hole between
// them is at most maxGap bytes and the read stays within maxSpan bytes.
func planSpans(chunks []*layout.ChunkInfo, fl []*flight, maxSpan, maxGap uint64) []*span {
	order := make([]int, len(chunks))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		return cmpU64(chunks[a].CompressedOffset, chunks[b].CompressedOffset)
	})
	var out []*span
	var cur *span
	for _, i := range order {
		c := chunks[i]
		if cur != nil && c.CompressedOffset >= cur.end && c.CompressedOffset-cur.end <= maxGap && chunkEnd(c)-cur.off <= maxSpan {
			cur.chunks = append(cur.chunks, c)
			cur.flights = append(cur.flights, fl[i])
			cur.end = chunkEnd(c)
			continue
		}
		cur = &span{off: c.CompressedOffset, end: chunkEnd(c), chunks: []*layout.ChunkInfo{c}, flights: []*flight{fl[i]}}
		out = append(out, cur)
	}
	return out
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// chunkTable is a blob's chunk list in compressed-offset order, used to
// find the chunks that follow a read (amplification, whole-blob prefetch).
type chunkTable struct {
	chunks []*layout.ChunkInfo
	pos    map[uint32]int // chunk index -> position in chunks
}

func newChunkTable(chunks []*layout.ChunkInfo) *chunkTable {
	t := &chunkTable{pos: make(map[uint32]int, len(chunks))}
	for _, c := range chunks {
		if _, dup := t.pos[c.Index]; dup {
			continue
		}
		t.pos[c.Index] = 0
		t.chunks = append(t.chunks, c)
	}
	slices.SortStableFunc(t.chunks, func(a, b *layout.ChunkInfo) int {
		return cmpU64(a.CompressedOffset, b.CompressedOffset)
	})
	for i, c := range t.chunks {
		t.pos[c.Index] = i
	}
	return t
}

// after returns the chunks that follow chunk idx in the blob.
func (t *chunkTable) after(idx uint32) []*layout.ChunkInfo {
	if t == nil {
		return nil
	}
	i, ok := t.pos[idx]
	if !ok {
		return nil
	}
	return t.chunks[i+1:]
}
