package rafs

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/gonydus/nydus/rafs/layout"
)

// Chunk is one chunk of a file: where its data lives and where it goes.
type Chunk struct {
	// Blob is the blob-table entry holding the chunk.
	Blob *layout.BlobEntry
	// Info is the chunk-table entry; Info.FileOffset is set to this file's
	// offset (a deduplicated chunk's table entry records its first user).
	Info layout.ChunkInfo
}

// loadChunkMap indexes the chunk table by the raw value of the 8-byte chunk
// index inodes carry, as nydusd does.
func (m *Image) loadChunkMap() error {
	m.chunkOnce.Do(func() {
		n := m.ext.ChunkTableSize / layout.ChunkInfoSize
		m.chunkMap = make(map[uint64]uint32, n)
		const batch = 4096
		for start := uint64(0); start < n; start += batch {
			k := min(batch, n-start)
			b, err := m.read(m.ext.ChunkTableOffset+start*layout.ChunkInfoSize, k*layout.ChunkInfoSize, "chunk table")
			if err != nil {
				m.chunkErr = err
				return
			}
			for i := range k {
				var c layout.ChunkInfo
				_ = c.Unmarshal(b[i*layout.ChunkInfoSize:])
				if c.BlobIndex >= uint32(len(m.blobs)) {
					m.chunkErr = formatErr("chunk table entry %d names blob %d of %d", start+i, c.BlobIndex, len(m.blobs))
					return
				}
				key := c.IndexKey(layout.BlockBits)
				if _, dup := m.chunkMap[key.Key()]; !dup {
					m.chunkMap[key.Key()] = uint32(start + i)
				}
			}
		}
	})
	return m.chunkErr
}

func (m *Image) chunkEntry(i uint32) (layout.ChunkInfo, error) {
	var c layout.ChunkInfo
	b, err := m.read(m.ext.ChunkTableOffset+uint64(i)*layout.ChunkInfoSize, layout.ChunkInfoSize, "chunk table entry")
	if err != nil {
		return c, err
	}
	err = c.Unmarshal(b)
	return c, err
}

// ChunkCount returns how many chunks a regular file of size bytes has.
func (m *Image) ChunkCount(size uint64) uint64 {
	cs := uint64(m.ext.ChunkSize)
	return (size + cs - 1) / cs
}

// Chunks returns the chunks of regular file nid in file order.
func (m *Image) Chunks(nid uint64) ([]Chunk, error) {
	ino, err := m.Inode(nid)
	if err != nil {
		return nil, err
	}
	return m.inodeChunks(ino)
}

func (m *Image) inodeChunks(ino *Inode) ([]Chunk, error) {
	if !ino.IsReg() {
		return nil, fmt.Errorf("rafs: inode %d (mode %#o) is not a regular file", ino.Nid, ino.Mode)
	}
	n := m.ChunkCount(ino.Size)
	if n == 0 {
		return nil, nil
	}
	if ino.raw.U&layout.ChunkFormatIndexes == 0 {
		return nil, formatErr("inode %d chunk format %#x lacks chunk indexes", ino.Nid, ino.raw.U)
	}
	if m.ext.ChunkTableSize == 0 {
		return nil, formatErr("image has no chunk table; chunk info from blob metadata is not supported")
	}
	if err := m.loadChunkMap(); err != nil {
		return nil, err
	}
	base := ino.off + alignUp(uint64(ino.raw.CoreSize())+uint64(ino.raw.XattrSize()), layout.ChunkIndexSize)
	if n > (uint64(m.size)-min(base, uint64(m.size)))/layout.ChunkIndexSize {
		return nil, formatErr("inode %d of %d bytes needs %d chunk indexes past the bootstrap end", ino.Nid, ino.Size, n)
	}
	b, err := m.read(base, n*layout.ChunkIndexSize, "chunk indexes")
	if err != nil {
		return nil, err
	}
	cs := uint64(m.ext.ChunkSize)
	out := make([]Chunk, n)
	for i := range n {
		raw := b[i*layout.ChunkIndexSize:]
		var idx layout.ChunkIndex
		if err := idx.Unmarshal(raw); err != nil {
			return nil, fmt.Errorf("rafs: inode %d chunk %d: %w", ino.Nid, i, err)
		}
		ti, ok := m.chunkMap[binary.LittleEndian.Uint64(raw)]
		if !ok {
			return nil, formatErr("inode %d chunk %d (blob %d, index %d, blkaddr %d) is not in the chunk table",
				ino.Nid, i, idx.BlobIndex, idx.ChunkIndex, idx.BlkAddr)
		}
		c, err := m.chunkEntry(ti)
		if err != nil {
			return nil, err
		}
		want := min(cs, ino.Size-i*cs)
		if uint64(c.UncompressedSize) != want {
			return nil, formatErr("inode %d chunk %d holds %d bytes, want %d", ino.Nid, i, c.UncompressedSize, want)
		}
		c.FileOffset = i * cs
		out[i] = Chunk{Blob: m.blobs[c.BlobIndex], Info: c}
	}
	return out, nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// BlobChunks returns the chunk-table entries of each blob, indexed by
// blob-table index, sorted by chunk-info index (the storage layer merges
// neighbouring chunks and prefetches whole blobs with them).
func (m *Image) BlobChunks() ([][]*layout.ChunkInfo, error) {
	n := m.ext.ChunkTableSize / layout.ChunkInfoSize
	out := make([][]*layout.ChunkInfo, len(m.blobs))
	seen := make([]map[uint32]bool, len(m.blobs))
	for i := range seen {
		seen[i] = map[uint32]bool{}
	}
	const batch = 4096
	for start := uint64(0); start < n; start += batch {
		k := min(batch, n-start)
		b, err := m.read(m.ext.ChunkTableOffset+start*layout.ChunkInfoSize, k*layout.ChunkInfoSize, "chunk table")
		if err != nil {
			return nil, err
		}
		for i := range k {
			c := new(layout.ChunkInfo)
			_ = c.Unmarshal(b[i*layout.ChunkInfoSize:])
			if c.BlobIndex >= uint32(len(m.blobs)) {
				return nil, formatErr("chunk table entry %d names blob %d of %d", start+i, c.BlobIndex, len(m.blobs))
			}
			if seen[c.BlobIndex][c.Index] {
				continue
			}
			seen[c.BlobIndex][c.Index] = true
			out[c.BlobIndex] = append(out[c.BlobIndex], c)
		}
	}
	for _, cs := range out {
		slices.SortFunc(cs, func(a, b *layout.ChunkInfo) int { return cmp.Compare(a.Index, b.Index) })
	}
	return out, nil
}
