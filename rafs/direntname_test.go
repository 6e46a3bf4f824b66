package rafs_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
)

// TestDirentNameWithSlashIsRejected: a directory entry whose name holds a
// slash (found by FuzzImage) used to be accepted, and Walk joined it into
// a path aliasing another one: "t/ree" in the root walked as /t/ree, and
// "/.." walked as "/" again, so Tree replaced the image's root with that
// entry's inode. Such a name is a format error.
func TestDirentNameWithSlashIsRejected(t *testing.T) {
	boot, _ := fuzzSeedImage(t, layout.CompressZstd)
	for _, c := range []struct{ name, bad string }{{"three", "t/ree"}, {"sub", "/.."}, {"same", "s\x00me"}} {
		i := bytes.Index(boot, []byte(c.name))
		if i < 0 {
			t.Fatalf("name %q not in the seed bootstrap", c.name)
		}
		b := bytes.Clone(boot)
		copy(b[i:], c.bad)
		img, err := rafs.Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		var paths []string
		werr := img.Walk(func(p string, _ *rafs.Inode) error { paths = append(paths, p); return nil })
		if werr == nil || !errors.Is(werr, layout.ErrFormat) {
			t.Errorf("%q: walk gave %v, want a format error; paths %q", c.bad, werr, paths)
		}
		if _, err := img.Tree(); err == nil {
			t.Errorf("%q: Tree accepted the image", c.bad)
		}
		if _, err := img.Lookup(img.Root(), "zzz"); err != nil && !errors.Is(err, rafs.ErrNotExist) && !errors.Is(err, layout.ErrFormat) {
			t.Errorf("%q: lookup: %v", c.bad, err)
		}
	}
}
