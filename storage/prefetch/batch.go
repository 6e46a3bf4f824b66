package prefetch

import (
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
)

// Limits of one chunk-list batch (upstream flushes file prefetch requests
// at these sizes).
const (
	ListBatchBytes  = 16 << 20
	ListBatchChunks = 1024
)

// batch is one unit of prefetch work.
type batch struct {
	blob   *storage.Blob
	chunks []*layout.ChunkInfo
	bytes  uint64 // compressed bytes
}

// split cuts chunks into batches of at most maxBytes compressed bytes and
// maxChunks chunks (0 = no chunk limit). A chunk larger than maxBytes is a
// batch of its own.
func split(b *storage.Blob, chunks []*layout.ChunkInfo, maxBytes uint64, maxChunks int) []batch {
	var out []batch
	cur := batch{blob: b}
	for _, c := range chunks {
		n := uint64(c.CompressedSize)
		if len(cur.chunks) > 0 && (cur.bytes+n > maxBytes || (maxChunks > 0 && len(cur.chunks) >= maxChunks)) {
			out = append(out, cur)
			cur = batch{blob: b}
		}
		cur.chunks = append(cur.chunks, c)
		cur.bytes += n
	}
	if len(cur.chunks) > 0 {
		out = append(out, cur)
	}
	return out
}
