package convert

import (
	"bytes"
	"context"
	"testing"

	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// TestMergeImpliedDirs pins how directories a layer only implies merge:
// they keep the lower directory's attributes, unless the layer whites the
// lower directory out or makes its parent opaque.
func TestMergeImpliedDirs(t *testing.T) {
	lower := []tarEntry{
		{name: "a/", typ: '5', mode: 0o700, uid: 3}, {name: "a/f", data: []byte("1")},
		{name: "o/", typ: '5', mode: 0o755}, {name: "o/s/", typ: '5', mode: 0o711, uid: 4},
		{name: "w/", typ: '5', mode: 0o701, uid: 5},
	}
	upper := []tarEntry{
		{name: "a/g", data: []byte("2")},                             // a implied: keeps 0700, uid 3
		{name: "o/.wh..wh..opq"}, {name: "o/s/x", data: []byte("3")}, // o/s implied after opaque: 0755
		{name: ".wh.w"}, {name: "w/y", data: []byte("4")}, // w implied after whiteout: 0755
	}
	var built []*builtLayer
	for i, l := range [][]tarEntry{lower, upper} {
		raw := makeTar(t, l)
		res, err := builder.Build(context.Background(), func(ctx context.Context, w builder.FileWriter) (*tree.Tree, error) {
			return fromTarBytes(ctx, raw, w)
		}, discard{})
		if err != nil {
			t.Fatal(err)
		}
		built = append(built, &builtLayer{index: i, tree: res.Tree})
	}
	boot, _, err := mergeLayers(built, nil)
	if err != nil {
		t.Fatal(err)
	}
	img := openBoot(t, boot)
	ft := newFlatTree() // check's view of the same layers must agree
	for _, l := range [][]tarEntry{lower, upper} {
		if err := ft.applyLayer(bytes.NewReader(makeTar(t, l))); err != nil {
			t.Fatal(err)
		}
	}
	for p, want := range map[string][2]uint32{
		"/a": {layout.ModeDir | 0o700, 3}, "/o/s": {layout.ModeDir | 0o755, 0}, "/w": {layout.ModeDir | 0o755, 0},
	} {
		nid, err := img.LookupPath(p)
		if err != nil {
			t.Fatal(err)
		}
		ino, err := img.Inode(nid)
		if err != nil {
			t.Fatal(err)
		}
		if ino.Mode != want[0] || ino.UID != want[1] {
			t.Errorf("%s: mode %#o uid %d, want %#o uid %d", p, ino.Mode, ino.UID, want[0], want[1])
		}
		if n := ft[p]; n == nil || (!n.implicit && (n.mode != want[0] || uint32(n.uid) != want[1])) {
			t.Errorf("%s: flattened %+v, want %#o uid %d", p, n, want[0], want[1])
		}
	}
}
