package convert

import (
	"bytes"
	"context"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// TestMergeImpliedDirs pins how directories a layer only implies merge:
// they keep the lower directory's attributes, unless the layer whites the
// lower directory out or makes its parent opaque.
func TestMergeImpliedDirs(t *testing.T) {
	lower := []tartest.Entry{
		tartest.Dir("a/", tartest.Mode(0o700), tartest.Owner(3, 0)), tartest.File("a/f", "1"),
		tartest.Dir("o/", tartest.Mode(0o755)), tartest.Dir("o/s/", tartest.Mode(0o711), tartest.Owner(4, 0)),
		tartest.Dir("w/", tartest.Mode(0o701), tartest.Owner(5, 0)),
	}
	upper := []tartest.Entry{
		tartest.File("a/g", "2"),                                       // a implied: keeps 0700, uid 3
		tartest.File("o/.wh..wh..opq", ""), tartest.File("o/s/x", "3"), // o/s implied after opaque: 0755
		tartest.File(".wh.w", ""), tartest.File("w/y", "4"), // w implied after whiteout: 0755
	}
	var built []*builtLayer
	for i, l := range [][]tartest.Entry{lower, upper} {
		raw := tartest.Tar(t, l...)
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
	for _, l := range [][]tartest.Entry{lower, upper} {
		if err := ft.applyLayer(bytes.NewReader(tartest.Tar(t, l...))); err != nil {
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
