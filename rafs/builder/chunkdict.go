package builder

import (
	"fmt"
	"os"

	"github.com/gonydus/nydus/rafs/digest"
	"github.com/gonydus/nydus/rafs/layout"
)

// Dict is a chunk dictionary loaded from a bootstrap: chunks a new build
// may reference instead of storing them again.
type Dict struct {
	// Blobs is the dictionary's blob table; chunk BlobIndex values refer to it.
	Blobs  []*layout.BlobEntry
	chunks map[digest.Digest]*layout.ChunkInfo
}

// LookupChunk implements ChunkDict.
func (d *Dict) LookupChunk(dg digest.Digest) *layout.ChunkInfo { return d.chunks[dg] }

// Len returns the number of chunks in the dictionary.
func (d *Dict) Len() int { return len(d.chunks) }

// LoadChunkDict reads the blob and chunk tables of a RAFS v6 bootstrap file.
func LoadChunkDict(path string) (*Dict, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseChunkDict(b)
}

// ParseChunkDict reads the blob and chunk tables of bootstrap bytes.
func ParseChunkDict(b []byte) (*Dict, error) {
	if len(b) < layout.BlockSize {
		return nil, fmt.Errorf("chunk dict: bootstrap of %d bytes is too short", len(b))
	}
	var sb layout.SuperBlock
	var ext layout.ExtSuperBlock
	_ = sb.Unmarshal(b[layout.SuperBlockOffset:])
	_ = ext.Unmarshal(b[layout.ExtSuperBlockOffset:])
	if err := sb.Validate(); err != nil {
		return nil, fmt.Errorf("chunk dict: %w", err)
	}
	if err := ext.Validate(); err != nil {
		return nil, fmt.Errorf("chunk dict: %w", err)
	}
	size := uint64(len(b))
	if ext.BlobTableOffset+uint64(ext.BlobTableSize) > size || ext.ChunkTableOffset+ext.ChunkTableSize > size {
		return nil, fmt.Errorf("chunk dict: tables lie outside the %d-byte bootstrap", size)
	}
	d := &Dict{chunks: map[digest.Digest]*layout.ChunkInfo{}}
	n := int(ext.BlobTableSize / layout.BlobEntrySize)
	for i := range n {
		e := new(layout.BlobEntry)
		_ = e.Unmarshal(b[ext.BlobTableOffset+uint64(i*layout.BlobEntrySize):])
		if err := e.Validate(i, ext.ChunkSize); err != nil {
			return nil, fmt.Errorf("chunk dict: %w", err)
		}
		e.Features &^= layout.BlobInlinedFSMeta
		d.Blobs = append(d.Blobs, e)
	}
	for off := ext.ChunkTableOffset; off < ext.ChunkTableOffset+ext.ChunkTableSize; off += layout.ChunkInfoSize {
		c := new(layout.ChunkInfo)
		_ = c.Unmarshal(b[off:])
		if int(c.BlobIndex) >= n {
			return nil, fmt.Errorf("chunk dict: chunk names blob %d of %d", c.BlobIndex, n)
		}
		if _, dup := d.chunks[c.Digest]; !dup {
			d.chunks[c.Digest] = c
		}
	}
	return d, nil
}
