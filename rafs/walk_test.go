package rafs_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/rafstest"
	"github.com/gonydus/nydus/rafs/tree"
)

// chainImage builds an image whose root holds a chain of depth nested
// directories, each named name, and a file at the bottom.
func chainImage(t *testing.T, depth int, name string) *rafs.Image {
	t.Helper()
	return rafstest.Build(t, func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		d := root
		for range depth {
			sub := tree.NewDir(0o755)
			d.SetChild(name, sub)
			d = sub
		}
		d.SetChild("bottom", tree.NewDir(0o700))
		return &tree.Tree{Root: root}, nil
	}).Image
}

// TestWalkDeepTree: Walk does not recurse, visits a deep chain with the
// right paths, and refuses one deeper than MaxWalkDepth instead of
// spending quadratic time on it.
func TestWalkDeepTree(t *testing.T) {
	img := chainImage(t, rafs.MaxWalkDepth-1, "d")
	var last string
	n := 0
	if err := img.Walk(func(p string, _ *rafs.Inode) error { last = p; n++; return nil }); err != nil {
		t.Fatalf("walk of a %d-deep tree: %v", rafs.MaxWalkDepth-1, err)
	}
	want := strings.Repeat("/d", rafs.MaxWalkDepth-1) + "/bottom"
	if n != rafs.MaxWalkDepth+1 || last != want {
		t.Fatalf("walk visited %d paths ending at %.40s...(%d bytes), want %d ending at %d bytes", n, last, len(last), rafs.MaxWalkDepth+1, len(want))
	}
	img = chainImage(t, rafs.MaxWalkDepth+5, strings.Repeat("n", 20))
	err := img.Walk(func(string, *rafs.Inode) error { return nil })
	if !errors.Is(err, rafs.ErrTooDeep) {
		t.Fatalf("walk of a tree deeper than MaxWalkDepth: %v", err)
	}
	if _, err := img.Tree(); err == nil {
		t.Fatal("Tree of a too deep image succeeded")
	}
}
