package merge

import (
	"errors"
	"strings"
	"testing"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

func blobEntry(id string, f layout.BlobFeatures) *layout.BlobEntry {
	e := &layout.BlobEntry{Features: f, CompressedSize: 111, MetaSize: 222}
	e.SetID(id)
	return e
}

func TestOwnBlob(t *testing.T) {
	a, b, d := blobEntry(strings.Repeat("a", 64), 0), blobEntry(strings.Repeat("b", 64), 0), blobEntry(strings.Repeat("d", 64), 0)
	dict := map[string]bool{d.ID(): true}
	if own, err := OwnBlob([]*layout.BlobEntry{d, a}, dict); err != nil || own != a {
		t.Fatalf("OwnBlob(dict, a) = %v, %v; want a", own, err)
	}
	if own, err := OwnBlob([]*layout.BlobEntry{d}, dict); err != nil || own != nil {
		t.Fatalf("OwnBlob(dict only) = %v, %v; want none", own, err)
	}
	if _, err := OwnBlob([]*layout.BlobEntry{a, b}, dict); !errors.Is(err, ErrMultipleBlobs) {
		t.Fatalf("two blobs of its own: err %v, want ErrMultipleBlobs", err)
	}
	// Without a dictionary every blob is the layer's own.
	if _, err := OwnBlob([]*layout.BlobEntry{d, a}, nil); !errors.Is(err, ErrMultipleBlobs) {
		t.Fatalf("dict blob without --chunk-dict: err %v, want ErrMultipleBlobs", err)
	}
}

func TestLayerBlobApply(t *testing.T) {
	id := strings.Repeat("1", 64)
	dig := [32]byte{0xab, 0xcd}
	toc := [32]byte{0x70}
	size, tocSize := uint64(4096), uint32(384)
	lb := LayerBlob{ID: &id, Digest: &dig, Size: &size, TOCDigest: &toc, TOCSize: &tocSize}

	// An ordinary blob: the RAFS blob is the data blob.
	native := blobEntry(strings.Repeat("f", 64), layout.BlobInlinedFSMeta)
	lb.Apply(native)
	if got := native.ID(); got != "abcd"+strings.Repeat("0", 60) {
		t.Fatalf("native blob id %s, want the --blob-digests value", got)
	}
	if native.CompressedSize != size || native.MetaSize != 222 || native.MetaDigest != ([32]byte{}) {
		t.Fatalf("native blob: compressed %d meta %d %x", native.CompressedSize, native.MetaSize, native.MetaDigest)
	}

	// A zran blob: data stay in the original layer; the RAFS blob is its meta blob.
	ref := blobEntry(strings.Repeat("f", 64), layout.BlobZran|layout.BlobSeparate|layout.BlobChunkInfoV2)
	lb.Apply(ref)
	if ref.ID() != id {
		t.Fatalf("ref blob id %s, want the original layer id %s", ref.ID(), id)
	}
	if ref.MetaDigest != dig || ref.MetaSize != size || ref.CompressedSize != 111 {
		t.Fatalf("ref blob: meta %x/%d compressed %d", ref.MetaDigest, ref.MetaSize, ref.CompressedSize)
	}
	for _, e := range []*layout.BlobEntry{native, ref} {
		if e.TOCDigest != toc || e.TOCSize != tocSize {
			t.Fatalf("toc %x/%d", e.TOCDigest, e.TOCSize)
		}
	}

	// Nothing given: nothing changes.
	keep := blobEntry(strings.Repeat("e", 64), 0)
	before := *keep
	LayerBlob{}.Apply(keep)
	if *keep != before {
		t.Fatal("empty LayerBlob changed the entry")
	}
}

func TestTableAdd(t *testing.T) {
	shared := blobEntry(strings.Repeat("d", 64), 0)
	lower := &tree.Tree{Root: tree.NewDir(0o755), Blobs: []*layout.BlobEntry{blobEntry(strings.Repeat("a", 64), 0), shared}}
	upper := &tree.Tree{Root: tree.NewDir(0o755), Blobs: []*layout.BlobEntry{blobEntry(strings.Repeat("d", 64), 0), blobEntry(strings.Repeat("b", 64), 0)}}
	c1 := &layout.ChunkInfo{BlobIndex: 1}
	lower.Root.SetChild("x", &tree.Inode{Mode: layout.ModeReg | 0o644, Chunks: []*layout.ChunkInfo{c1}})
	c2, c3 := &layout.ChunkInfo{BlobIndex: 0}, &layout.ChunkInfo{BlobIndex: 1}
	// c2 is shared by two files: remapped once.
	upper.Root.SetChild("y", &tree.Inode{Mode: layout.ModeReg | 0o644, Chunks: []*layout.ChunkInfo{c2, c3}})
	upper.Root.SetChild("z", &tree.Inode{Mode: layout.ModeReg | 0o644, Chunks: []*layout.ChunkInfo{c2}})
	var bt Table
	if err := bt.Add(lower); err != nil {
		t.Fatal(err)
	}
	if err := bt.Add(upper); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range bt.Blobs {
		ids = append(ids, b.ID()[:1])
	}
	if strings.Join(ids, "") != "adb" {
		t.Fatalf("table %v, want a d b", ids)
	}
	if c1.BlobIndex != 1 || c2.BlobIndex != 1 || c3.BlobIndex != 2 {
		t.Fatalf("chunk blob indices %d %d %d, want 1 1 2", c1.BlobIndex, c2.BlobIndex, c3.BlobIndex)
	}
	bad := &tree.Tree{Root: tree.NewDir(0o755)}
	bad.Root.SetChild("w", &tree.Inode{Mode: layout.ModeReg | 0o644, Chunks: []*layout.ChunkInfo{{BlobIndex: 3}}})
	if err := bt.Add(bad); err == nil {
		t.Fatal("a chunk pointing past the layer's blob table was accepted")
	}
}
