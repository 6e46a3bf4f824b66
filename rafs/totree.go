package rafs

import (
	"fmt"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// Tree loads the whole image into an in-memory tree, the input of merge,
// unpack and rebuilds. Hardlinked files share one tree.Inode; chunks keep
// their blob-table indexes, and Tree.Blobs holds copies of the blob table.
// Chunk entries are shared between files that share a chunk-table entry.
func (m *Image) Tree() (*tree.Tree, error) {
	t := &tree.Tree{ChunkSize: m.ext.ChunkSize, Flags: m.ext.Flags}
	for _, b := range m.blobs {
		e := *b
		t.Blobs = append(t.Blobs, &e)
	}
	byNid := map[uint64]*tree.Inode{}
	pathOf := map[uint64]string{}
	chunkOf := map[[2]uint64]*layout.ChunkInfo{}
	parents := map[string]*tree.Inode{}
	err := m.Walk(func(p string, ino *Inode) error {
		if _, ok := pathOf[ino.Nid]; !ok {
			pathOf[ino.Nid] = p
		}
		ti, linked := byNid[ino.Nid]
		if !linked {
			var err error
			if ti, err = m.treeInode(ino, chunkOf); err != nil {
				return fmt.Errorf("rafs: %s: %w", p, err)
			}
			byNid[ino.Nid] = ti
		}
		if p == "/" {
			t.Root = ti
		} else {
			dir, name := splitPath(p)
			parent := parents[dir]
			if parent == nil {
				return fmt.Errorf("rafs: %s: parent not loaded", p)
			}
			parent.Children = append(parent.Children, &tree.Entry{Name: name, Inode: ti})
		}
		if ino.IsDir() {
			parents[p] = ti
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, nid := range m.prefetch {
		if p, ok := pathOf[nid]; ok {
			t.Prefetch = append(t.Prefetch, p)
		}
	}
	return t, nil
}

func splitPath(p string) (dir, name string) {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			if i == 0 {
				return "/", p[1:]
			}
			return p[:i], p[i+1:]
		}
	}
	return "/", p
}

func (m *Image) treeInode(ino *Inode, chunkOf map[[2]uint64]*layout.ChunkInfo) (*tree.Inode, error) {
	ti := &tree.Inode{Mode: ino.Mode, UID: ino.UID, GID: ino.GID, Mtime: ino.Mtime, MtimeNsec: ino.MtimeNsec, Rdev: ino.Rdev}
	xs, err := m.inodeXattrs(ino)
	if err != nil {
		return nil, err
	}
	ti.Xattrs = xs
	switch {
	case ino.IsSymlink():
		if ti.Target, err = m.Readlink(ino.Nid); err != nil {
			return nil, err
		}
	case ino.IsReg():
		ti.Size = ino.Size
		chunks, err := m.inodeChunks(ino)
		if err != nil {
			return nil, err
		}
		ti.Chunks = make([]*layout.ChunkInfo, len(chunks))
		for i, c := range chunks {
			k := [2]uint64{uint64(c.Info.BlobIndex), uint64(c.Info.Index)<<32 | c.Info.UncompressedOffset>>layout.BlockBits}
			p := chunkOf[k]
			if p == nil {
				info := c.Info
				p = &info
				chunkOf[k] = p
			}
			ti.Chunks[i] = p
		}
	}
	return ti, nil
}
