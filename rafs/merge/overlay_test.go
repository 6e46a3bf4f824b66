package merge

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

func file(content string) *tree.Inode {
	return &tree.Inode{Mode: layout.ModeReg | 0o644, Target: content} // Target carries an id for the test
}

func paths(root *tree.Inode) []string {
	var out []string
	t := &tree.Tree{Root: root}
	_ = t.Walk(func(p string, ino *tree.Inode) error {
		if ino.IsReg() {
			p += "=" + ino.Target
		}
		out = append(out, p)
		return nil
	})
	return out
}

func build(spec map[string]*tree.Inode) *tree.Inode {
	root := tree.NewDir(0o755)
	for p, ino := range spec {
		dir := root
		parts := splitPath(p)
		for _, d := range parts[:len(parts)-1] {
			e := dir.Child(d)
			if e == nil {
				e = dir.SetChild(d, tree.NewDir(0o755))
			}
			dir = e.Inode
		}
		dir.SetChild(parts[len(parts)-1], ino)
	}
	return root
}

func splitPath(p string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			out = append(out, p[start:i])
			start = i + 1
		}
	}
	return out
}

func TestApplyOCI(t *testing.T) {
	base := build(map[string]*tree.Inode{
		"a/keep": file("1"), "a/gone": file("2"), "b/x": file("3"), "c/y": file("4"), "d": file("5"),
	})
	layer := build(map[string]*tree.Inode{
		"a/.wh.gone": file(""), "a/new": file("6"),
		"b/.wh..wh..opq": file(""), "b/z": file("7"),
		".wh.c": file(""), "d": file("8"), "e/.wh.nothing": file(""),
	})
	Apply(base, layer, WhiteoutOCI)
	got := paths(base)
	want := []string{"/", "/a", "/a/keep=1", "/a/new=6", "/b", "/b/z=7", "/d=8", "/e"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

func TestApplyOverlayfs(t *testing.T) {
	base := build(map[string]*tree.Inode{"a/keep": file("1"), "a/gone": file("2"), "b/x": file("3")})
	opq := tree.NewDir(0o755)
	opq.SetXattr("trusted.overlay.opaque", []byte("y"))
	opq.SetChild("z", file("7"))
	layer := build(map[string]*tree.Inode{
		"a/gone": {Mode: layout.ModeChr, Rdev: unix.Mkdev(0, 0)},
		"b":      opq,
	})
	Apply(base, layer, WhiteoutOverlayfs)
	got := paths(base)
	want := []string{"/", "/a", "/a/keep=1", "/b", "/b/z=7"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if _, ok := base.Child("b").Inode.Xattr("trusted.overlay.opaque"); ok {
		t.Fatal("opaque marker carried into the merged tree")
	}
}

// TestApplyRootAttributes: the upper root's attributes win, as for every
// other directory (overlayfs shows the uppermost directory; upstream's
// merge keeps the upper root).
func TestApplyRootAttributes(t *testing.T) {
	base := build(map[string]*tree.Inode{"a": file("1")})
	base.Mtime, base.UID = 100, 5
	base.SetXattr("user.lower", []byte("x"))
	layer := build(map[string]*tree.Inode{"b": file("2")})
	layer.Mode, layer.Mtime, layer.MtimeNsec, layer.UID, layer.GID = layout.ModeDir|0o700, 200, 7, 1, 2
	layer.SetXattr("user.upper", []byte("y"))
	layer.SetXattr("trusted.overlay.opaque", []byte("n"))
	Apply(base, layer, WhiteoutOverlayfs)
	if base.Mode != layout.ModeDir|0o700 || base.Mtime != 200 || base.MtimeNsec != 7 || base.UID != 1 || base.GID != 2 {
		t.Fatalf("root attributes %+v, want the upper root's", base)
	}
	if _, ok := base.Xattr("user.lower"); ok || len(base.Xattrs) != 1 {
		t.Fatalf("root xattrs %v, want only user.upper", base.Xattrs)
	}
	if got := paths(base); !slices.Equal(got, []string{"/", "/a=1", "/b=2"}) {
		t.Fatalf("children %v", got)
	}
}
