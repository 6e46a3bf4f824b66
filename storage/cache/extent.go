package cache

import (
	"os"

	"github.com/gonydus/nydus/rafs/layout"
)

// ReadyExtent returns the data file and the byte range of chunk c when it
// is cached uncompressed, so a caller can hand the range to the kernel
// (splice) instead of copying it. ok is false when the chunk is not ready,
// the cache is compressed, or the blob file is closed. The file stays
// owned by the BlobFile.
func (b *BlobFile) ReadyExtent(c *layout.ChunkInfo) (f *os.File, off, n int64, ok bool) {
	b.life.RLock()
	defer b.life.RUnlock()
	if b.isShut || b.cfg.compressed || !b.ready(c) {
		return nil, 0, 0, false
	}
	off, n, err := b.extent(c)
	if err != nil {
		return nil, 0, 0, false
	}
	return b.data, off, n, true
}
