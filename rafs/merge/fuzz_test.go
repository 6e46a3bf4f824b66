package merge

import (
	"fmt"
	"path"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// Entry kinds the fuzzer places in layers.
const (
	kDir = iota
	kFile
	kSymlink
	kWhiteoutDev // a 0/0 character device: an overlayfs whiteout
	kOpaqueDir   // a directory with trusted.overlay.opaque=y
	numKinds
)

var fuzzNames = []string{"a", "b", ".wh.a", ".wh.b", ".wh..wh..opq", ".wh."}

// node is what the model knows of one path: its kind and the id of the
// inode that provides it (tree inodes carry the id in Mtime).
type node struct {
	kind int
	id   uint64
}

// layerSpec is one fuzzed layer: the model's map of paths and the tree.
type layerSpec struct {
	paths map[string]node
	root  *tree.Inode
}

func newLayer() *layerSpec {
	return &layerSpec{paths: map[string]node{}, root: tree.NewDir(0o755)}
}

// add places a kind at p, creating parent directories; it does nothing when
// p exists or a parent is not a directory.
func (l *layerSpec) add(p string, kind int, id *uint64) {
	if _, ok := l.paths[p]; ok {
		return
	}
	dir := l.root
	elems := strings.Split(strings.TrimPrefix(p, "/"), "/")
	cur := ""
	for _, d := range elems[:len(elems)-1] {
		cur += "/" + d
		e := dir.Child(d)
		if e == nil {
			*id++
			ino := tree.NewDir(0o755)
			ino.Mtime = *id
			e = dir.SetChild(d, ino)
			l.paths[cur] = node{kDir, *id}
		}
		if !e.Inode.IsDir() {
			return
		}
		dir = e.Inode
	}
	*id++
	ino := &tree.Inode{Mtime: *id}
	switch kind {
	case kDir:
		ino.Mode = layout.ModeDir | 0o755
	case kOpaqueDir:
		ino.Mode = layout.ModeDir | 0o755
		ino.SetXattr(opaqueKey, []byte("y"))
	case kFile:
		ino.Mode = layout.ModeReg | 0o644
	case kSymlink:
		ino.Mode, ino.Target = layout.ModeSymlink|0o777, "x"
	case kWhiteoutDev:
		ino.Mode, ino.Rdev = layout.ModeChr, unix.Mkdev(0, 0)
	}
	dir.SetChild(elems[len(elems)-1], ino)
	l.paths[p] = node{kind, *id}
}

func isDirKind(k int) bool { return k == kDir || k == kOpaqueDir }

func parentOf(p string) string { return path.Dir(p) }

// marker reports whether upper path q is a whiteout marker (or lies inside
// one) and so never appears in a merged tree.
func marker(spec WhiteoutSpec, u map[string]node, q string) bool {
	switch spec {
	case WhiteoutOCI:
		for _, c := range strings.Split(strings.TrimPrefix(q, "/"), "/") {
			if strings.HasPrefix(c, whPrefix) {
				return true
			}
		}
	case WhiteoutOverlayfs:
		return u[q].kind == kWhiteoutDev && u[q].id != 0
	}
	return false
}

// opaque reports whether upper directory d hides the lower contents.
func opaque(spec WhiteoutSpec, u map[string]node, d string) bool {
	switch spec {
	case WhiteoutOCI:
		_, ok := u[path.Join(d, whOpaque)]
		return ok
	case WhiteoutOverlayfs:
		return u[d].kind == kOpaqueDir && u[d].id != 0
	}
	return false
}

// whitedOut reports whether upper deletes lower path q.
func whitedOut(spec WhiteoutSpec, u map[string]node, q string) bool {
	switch spec {
	case WhiteoutOCI:
		_, ok := u[path.Join(parentOf(q), whPrefix+path.Base(q))]
		return ok
	case WhiteoutOverlayfs:
		n, ok := u[q]
		return ok && n.kind == kWhiteoutDev
	}
	return false
}

// model merges upper over lower the way overlayfs presents it: a lower path
// survives if, going down from the root, every level is either untouched by
// the upper layer or a directory in both (merged) with no opaque parent and
// no whiteout; the upper layer's non-marker paths are added and win.
func model(spec WhiteoutSpec, lower, upper map[string]node) map[string]node {
	out := map[string]node{}
	for p, n := range lower {
		elems := strings.Split(strings.TrimPrefix(p, "/"), "/")
		kept, q := true, ""
		for _, c := range elems {
			parent := q
			if parent == "" {
				parent = "/"
			}
			q += "/" + c
			if opaque(spec, upper, parent) || whitedOut(spec, upper, q) {
				kept = false
				break
			}
			un, inUpper := upper[q]
			if !inUpper {
				break
			}
			if !isDirKind(un.kind) || !isDirKind(lower[q].kind) {
				kept = false
				break
			}
		}
		if kept {
			out[p] = n
		}
	}
	for p, n := range upper {
		if !marker(spec, upper, p) {
			out[p] = n
		}
	}
	return out
}

func strip(spec WhiteoutSpec, l map[string]node) map[string]node {
	out := map[string]node{}
	for p, n := range l {
		if !marker(spec, l, p) {
			out[p] = n
		}
	}
	return out
}

func dump(m map[string]node) string {
	var ps []string
	for p, n := range m {
		ps = append(ps, fmt.Sprintf("%s(k%d#%d)", p, n.kind, n.id))
	}
	sort.Strings(ps)
	return strings.Join(ps, " ")
}

// FuzzApply merges fuzzed layers (directories, files, symlinks, OCI
// ".wh." markers, opaque markers, overlayfs 0/0 devices and opaque xattrs,
// up to three levels deep) with Strip and Apply as merge and convert do, and
// compares the result with a model of overlayfs semantics: which paths
// exist, which layer's inode provides each, and that no marker survives.
func FuzzApply(f *testing.F) {
	// Layer 0: files /a/a and /b/a; layer 1: whiteout /a, opaque /b, add /b/b.
	f.Add([]byte{0, kFile, 1, 0, 0, 0, 0, kFile, 1, 1, 0, 0, 1, kFile, 0, 2, 0, 0, 1, kFile, 1, 1, 4, 0, 1, kFile, 1, 1, 1, 0}, uint8(0))
	// The same in overlayfs terms, and a third layer adding a directory /b/a.
	f.Add([]byte{0, kFile, 1, 0, 0, 0, 0, kFile, 1, 1, 0, 0, 1, kWhiteoutDev, 1, 0, 0, 0, 1, kOpaqueDir, 0, 1, 0, 0, 2, kDir, 1, 1, 0, 0}, uint8(1))
	f.Add([]byte{0, kDir, 2, 0, 1, 0, 1, kFile, 0, 0, 0, 0, 2, kDir, 2, 0, 1, 1, 2, kFile, 0, 5, 0, 0}, uint8(2))
	f.Fuzz(func(t *testing.T, ops []byte, specByte uint8) {
		spec := WhiteoutSpec(specByte % 3)
		if len(ops) > 6*64 {
			ops = ops[:6*64]
		}
		layers := []*layerSpec{newLayer(), newLayer(), newLayer()}
		var id uint64
		for i := 0; i+6 <= len(ops); i += 6 {
			op := ops[i : i+6]
			depth := 1 + int(op[2])%3
			p := ""
			for d := range depth {
				p += "/" + fuzzNames[int(op[3+d])%len(fuzzNames)]
			}
			layers[int(op[0])%3].add(p, int(op[1])%numKinds, &id)
		}
		base := layers[0].root
		Strip(base, spec)
		want := strip(spec, layers[0].paths)
		for _, l := range layers[1:] {
			Apply(base, l.root, spec)
			want = model(spec, want, l.paths)
		}
		got := map[string]node{}
		err := (&tree.Tree{Root: base}).Walk(func(p string, ino *tree.Inode) error {
			if p == "/" {
				return nil
			}
			if _, dup := got[p]; dup {
				t.Fatalf("%s appears twice", p)
			}
			k := kFile
			switch {
			case ino.IsDir():
				k = kDir
				if _, ok := ino.Xattr(opaqueKey); ok {
					if spec == WhiteoutOverlayfs {
						t.Fatalf("%s keeps its opaque xattr", p)
					}
					k = kOpaqueDir
				}
			case ino.IsSymlink():
				k = kSymlink
			case ino.Mode&layout.ModeTypeMask == layout.ModeChr:
				k = kWhiteoutDev
			}
			got[p] = node{k, ino.Mtime}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The model keeps the kind the layer gave; a merged opaque directory
		// loses its xattr under overlayfs, so compare directories as one kind.
		norm := func(m map[string]node) map[string]node {
			out := map[string]node{}
			for p, n := range m {
				if n.kind == kOpaqueDir && spec == WhiteoutOverlayfs {
					n.kind = kDir
				}
				out[p] = n
			}
			return out
		}
		if g, w := dump(norm(got)), dump(norm(want)); g != w {
			t.Fatalf("spec %d:\nmerged %s\nmodel  %s", spec, g, w)
		}
	})
}
