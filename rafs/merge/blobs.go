package merge

import (
	"errors"
	"fmt"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// ErrMultipleBlobs reports a layer bootstrap that adds more than one data
// blob of its own: a layer adds at most one, the others must come from the
// chunk dictionary.
var ErrMultipleBlobs = errors.New("merge: layer bootstrap has more than one data blob of its own")

// OwnBlob returns the data blob a layer bootstrap adds to the image: the
// one blob of its table that is not a chunk-dictionary blob (dict holds
// the dictionary's blob ids). It returns nil for a layer without one.
func OwnBlob(blobs []*layout.BlobEntry, dict map[string]bool) (*layout.BlobEntry, error) {
	var own *layout.BlobEntry
	for _, b := range blobs {
		if dict[b.ID()] {
			continue
		}
		if own != nil {
			return nil, fmt.Errorf("%w: %s and %s", ErrMultipleBlobs, own.ID(), b.ID())
		}
		own = b
	}
	return own, nil
}

// LayerBlob rewrites a layer's own blob as the merged image must name it.
// Nil fields leave the entry as the layer bootstrap has it.
type LayerBlob struct {
	// ID is the blob id in the merged image: for a layer converted from an
	// OCI layer, the digest of the whole layer blob (or, for a reference
	// layer, of the original gzip layer).
	ID *string
	// Digest and Size are the digest and size of the RAFS blob the layer
	// was converted to. For a blob whose data lives apart from its
	// metadata (BlobSeparate: a zran/OCI-ref layer reads its data from the
	// original gzip layer), they name the RAFS blob as the blob's meta blob
	// and the id stays the original layer's; otherwise the digest is the
	// blob id and the size its compressed size.
	Digest *[32]byte
	Size   *uint64
	// TOCDigest and TOCSize describe the RAFS blob's table of contents.
	TOCDigest *[32]byte
	TOCSize   *uint32
}

// Apply rewrites e.
func (o LayerBlob) Apply(e *layout.BlobEntry) {
	separate := e.Features&layout.BlobSeparate != 0
	if o.ID != nil {
		e.SetID(*o.ID)
	}
	if o.Digest != nil {
		if separate {
			e.MetaDigest = *o.Digest
		} else {
			e.SetID(fmt.Sprintf("%x", *o.Digest))
		}
	}
	if o.Size != nil {
		if separate {
			e.MetaSize = *o.Size
		} else {
			e.CompressedSize = *o.Size
		}
	}
	if o.TOCDigest != nil {
		e.TOCDigest = *o.TOCDigest
	}
	if o.TOCSize != nil {
		e.TOCSize = *o.TOCSize
	}
}

// Table is the blob table of a merged image: one entry per blob id, in
// the order blobs were first added. The bootstrap writer later keeps only
// the blobs chunks still refer to.
type Table struct {
	Blobs []*layout.BlobEntry
	index map[string]uint32
}

// Add adds the blobs of t that the table does not hold yet (by blob id)
// and points every chunk of t at the table's index of its blob. Blob ids
// must be final: apply LayerBlob first.
func (bt *Table) Add(t *tree.Tree) error {
	if bt.index == nil {
		bt.index = map[string]uint32{}
	}
	remap := make([]uint32, len(t.Blobs))
	for i, b := range t.Blobs {
		k, ok := bt.index[b.ID()]
		if !ok {
			k = uint32(len(bt.Blobs))
			bt.index[b.ID()] = k
			bt.Blobs = append(bt.Blobs, b)
		}
		remap[i] = k
	}
	done := map[*layout.ChunkInfo]bool{} // chunk infos may be shared by files
	return t.Walk(func(p string, ino *tree.Inode) error {
		for _, c := range ino.Chunks {
			if done[c] {
				continue
			}
			if int(c.BlobIndex) >= len(remap) {
				return fmt.Errorf("merge: %s: chunk refers to blob %d of %d", p, c.BlobIndex, len(remap))
			}
			done[c] = true
			c.BlobIndex = remap[c.BlobIndex]
		}
		return nil
	})
}
