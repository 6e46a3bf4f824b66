package merge

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// layerTree is a layer with one blob of its own (id repeated 64 times)
// holding a chunk of every file in spec.
func layerTree(id string, spec map[string]*tree.Inode) (*tree.Tree, []*layout.ChunkInfo) {
	var chunks []*layout.ChunkInfo
	for _, ino := range spec {
		if ino.IsReg() {
			c := &layout.ChunkInfo{BlobIndex: 0}
			ino.Chunks = []*layout.ChunkInfo{c}
			chunks = append(chunks, c)
		}
	}
	return &tree.Tree{Root: build(spec), ChunkSize: 1 << 20, Blobs: []*layout.BlobEntry{blobEntry(strings.Repeat(id, 64), 0)}}, chunks
}

func TestLayers(t *testing.T) {
	m, err := NewLayers(WithWhiteoutSpec(WhiteoutOCI))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Tree(); err == nil {
		t.Fatal("an empty merge gave a tree")
	}
	// The lowest layer's whiteout deletes nothing and does not show.
	low, lowChunks := layerTree("a", map[string]*tree.Inode{"a/keep": file("1"), "a/gone": file("2"), ".wh.nothing": file("")})
	low.Prefetch = []string{"/a/keep"}
	mid, midChunks := layerTree("b", map[string]*tree.Inode{"a/.wh.gone": file(""), "b": file("3")})
	mid.Flags = layout.FlagExplicitUIDGID
	// The same blob as the lowest layer (an identical layer again): one
	// table entry.
	top, topChunks := layerTree("a", map[string]*tree.Inode{"c": file("4")})
	for i, l := range []*tree.Tree{low, mid, top} {
		if err := m.Add(l); err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
	}
	got, err := m.Tree()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/", "/a", "/a/keep=1", "/b=3", "/c=4"}; !slices.Equal(paths(got.Root), want) {
		t.Fatalf("merged %v, want %v", paths(got.Root), want)
	}
	if len(got.Blobs) != 2 || got.Blobs[0].ID() != strings.Repeat("a", 64) || got.Blobs[1].ID() != strings.Repeat("b", 64) {
		t.Fatalf("blob table %d entries", len(got.Blobs))
	}
	for name, cs := range map[string][]*layout.ChunkInfo{"lowest": lowChunks, "middle": midChunks, "top": topChunks} {
		want := uint32(0)
		if name == "middle" {
			want = 1
		}
		for _, c := range cs {
			if c.BlobIndex != want {
				t.Fatalf("%s layer chunk in blob %d, want %d", name, c.BlobIndex, want)
			}
		}
	}
	if got.Flags&layout.FlagExplicitUIDGID == 0 || !slices.Equal(got.Prefetch, []string{"/a/keep"}) {
		t.Fatalf("flags %#x prefetch %v", got.Flags, got.Prefetch)
	}

	odd, _ := layerTree("c", map[string]*tree.Inode{"d": file("5")})
	odd.ChunkSize = 4096
	if err := m.Add(odd); !errors.Is(err, ErrChunkSize) {
		t.Fatalf("a layer with another chunk size: %v", err)
	}
}

func TestLayersParentAndHook(t *testing.T) {
	var seen int
	m, err := NewLayers(WithBeforeApply(func(base, layer *tree.Inode) { seen++ }))
	if err != nil {
		t.Fatal(err)
	}
	// A merged parent is taken as it is; the layers above delete from it.
	parent, _ := layerTree("a", map[string]*tree.Inode{"x": file("1")})
	if err := m.AddMerged(parent); err != nil {
		t.Fatal(err)
	}
	up, _ := layerTree("b", map[string]*tree.Inode{".wh.x": file(""), "y": file("2")})
	if err := m.Add(up); err != nil {
		t.Fatal(err)
	}
	got, _ := m.Tree()
	if want := []string{"/", "/y=2"}; !slices.Equal(paths(got.Root), want) || seen != 1 {
		t.Fatalf("merged %v (hook ran %d times), want %v", paths(got.Root), seen, want)
	}
	if err := m.AddMerged(parent); err == nil {
		t.Fatal("a parent after layers was accepted")
	}
	if _, err := NewLayers(WithBeforeApply(nil)); err == nil {
		t.Fatal("nil hook accepted")
	}
	if _, err := NewLayers(WithWhiteoutSpec(WhiteoutSpec(9))); err == nil {
		t.Fatal("unknown whiteout spec accepted")
	}
}
