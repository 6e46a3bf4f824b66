package storage

import (
	"fmt"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
)

// ChunkTables returns each blob's chunks from img's chunk table, in
// compressed-offset order, for WithChunkTables: amplification and
// whole-blob prefetch need to know what follows a chunk.
func ChunkTables(img *rafs.Image) (func(*layout.BlobEntry) []*layout.ChunkInfo, error) {
	per, err := img.BlobChunks()
	if err != nil {
		return nil, fmt.Errorf("storage: chunk tables: %w", err)
	}
	tables := make(map[string][]*layout.ChunkInfo, len(per))
	for i, e := range img.Blobs() {
		if i < len(per) {
			tables[e.ID()] = newChunkTable(per[i]).chunks
		}
	}
	return func(e *layout.BlobEntry) []*layout.ChunkInfo { return tables[e.ID()] }, nil
}
