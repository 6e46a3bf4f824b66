package storage

import (
	"context"
	"os"

	"github.com/gonydus/nydus/rafs/layout"
)

// CachedExtent returns where chunk c lies, uncompressed, in the cache's
// data file, when it may be served from there without verification
// (validation off and no CRC to check). ok is false otherwise; then read
// through ReadChunk.
func (b *Blob) CachedExtent(c *layout.ChunkInfo) (f *os.File, off, n int64, ok bool) {
	if b.cfg.cache == nil || b.closed.Load() || needsCheck(c, b.cfg.validate) {
		return nil, 0, 0, false
	}
	return b.cfg.cache.ReadyExtent(c)
}

// CachedExtent is Blob.CachedExtent for the blob of entry.
func (s *Source) CachedExtent(ctx context.Context, entry *layout.BlobEntry, c *layout.ChunkInfo) (f *os.File, off, n int64, ok bool) {
	b, err := s.Blob(ctx, entry)
	if err != nil {
		return nil, 0, 0, false
	}
	return b.CachedExtent(c)
}
