package storage

import (
	"fmt"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
)

// ChunkTables walks every regular file of img once and returns each blob's
// chunks (unique by chunk index), for WithChunkTables: amplification and
// whole-blob prefetch need to know what follows a chunk, and the RAFS
// reader exposes chunks per file only.
func ChunkTables(img *rafs.Image) (func(*layout.BlobEntry) []*layout.ChunkInfo, error) {
	byBlob := map[string]map[uint32]*layout.ChunkInfo{}
	seen := map[uint64]bool{}
	err := img.Walk(func(p string, ino *rafs.Inode) error {
		if !ino.IsReg() || seen[ino.Nid] {
			return nil
		}
		seen[ino.Nid] = true
		chunks, err := img.Chunks(ino.Nid)
		if err != nil {
			return fmt.Errorf("storage: chunks of %s: %w", p, err)
		}
		for _, c := range chunks {
			id := c.Blob.ID()
			m := byBlob[id]
			if m == nil {
				m = map[uint32]*layout.ChunkInfo{}
				byBlob[id] = m
			}
			if _, ok := m[c.Info.Index]; !ok {
				info := c.Info
				m[c.Info.Index] = &info
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	tables := make(map[string][]*layout.ChunkInfo, len(byBlob))
	for id, m := range byBlob {
		list := make([]*layout.ChunkInfo, 0, len(m))
		for _, c := range m {
			list = append(list, c)
		}
		tables[id] = newChunkTable(list).chunks
	}
	return func(e *layout.BlobEntry) []*layout.ChunkInfo { return tables[e.ID()] }, nil
}
