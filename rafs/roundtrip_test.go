package rafs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/rafstest"
	"github.com/gonydus/nydus/rafs/tree"
)

type sample struct {
	tree  *tree.Tree
	files map[*tree.Inode][]byte
}

// buildSample builds a tree with every entry type and returns the image,
// its blob and what each file should hold.
func buildSample(t *testing.T, opts ...builder.Option) (*rafs.Image, *rafs.LocalBlobs, *sample) {
	t.Helper()
	s := &sample{files: map[*tree.Inode][]byte{}}
	im := rafstest.Build(t, func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		root.Mtime = 1700000000
		file := func(dir *tree.Inode, name string, data []byte, mode uint32) *tree.Inode {
			chunks, err := w.WriteFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			ino := &tree.Inode{Mode: layout.ModeReg | mode, UID: 1000, GID: 100, Mtime: 1600000000, MtimeNsec: 123456789,
				Size: uint64(len(data)), Chunks: chunks}
			dir.SetChild(name, ino)
			s.files[ino] = data
			return ino
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 300000) // 4.8 MB: several chunks
		file(root, "empty", nil, 0o644)
		f := file(root, "big", big, 0o600)
		f.SetXattr("user.k", []byte("v"))
		f.SetXattr("security.capability", []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
		sub := tree.NewDir(0o700)
		sub.UID, sub.GID = 5, 6
		sub.SetXattr("trusted.overlay.opaque", []byte("y"))
		root.SetChild("sub", sub)
		sub.SetChild("hardlink", f)
		file(sub, "名前.txt", []byte("utf-8 name\n"), 0o644)
		file(sub, strings.Repeat("L", 255), []byte("long name\n"), 0o644)
		root.SetChild("link", &tree.Inode{Mode: layout.ModeSymlink | 0o777, Target: "sub/名前.txt"})
		root.SetChild("longlink", &tree.Inode{Mode: layout.ModeSymlink | 0o777, Target: strings.Repeat("./", 1990) + "big"})
		root.SetChild("null", &tree.Inode{Mode: layout.ModeChr | 0o666, Rdev: unix.Mkdev(1, 3)})
		root.SetChild("loop", &tree.Inode{Mode: layout.ModeBlk | 0o660, Rdev: unix.Mkdev(7, 300)})
		root.SetChild("fifo", &tree.Inode{Mode: layout.ModeFifo | 0o644})
		root.SetChild("sock", &tree.Inode{Mode: layout.ModeSock | 0o755})
		many := tree.NewDir(0o755)
		root.SetChild("many", many)
		for i := range 700 { // several directory blocks
			file(many, fmt.Sprintf("file-%04d-%s", i, strings.Repeat("x", i%50)), []byte(fmt.Sprint(i)), 0o644)
		}
		s.tree = &tree.Tree{Root: root, Prefetch: []string{"/sub", "/big"}}
		return s.tree, nil
	}, opts...)
	return im.Image, im.Blobs(), s
}

func compareInodes(t *testing.T, p string, want, got *tree.Inode) {
	t.Helper()
	if want.Mode != got.Mode || want.UID != got.UID || want.GID != got.GID || want.Mtime != got.Mtime ||
		want.MtimeNsec != got.MtimeNsec || want.Size != got.Size || want.Rdev != got.Rdev || want.Target != got.Target {
		t.Fatalf("%s: got %+v, want %+v", p, got, want)
	}
	if !slices.EqualFunc(want.Xattrs, got.Xattrs, func(a, b layout.Xattr) bool { return a.Name == b.Name && bytes.Equal(a.Value, b.Value) }) {
		t.Fatalf("%s: xattrs %v, want %v", p, got.Xattrs, want.Xattrs)
	}
	if len(want.Children) != len(got.Children) {
		t.Fatalf("%s: %d children, want %d", p, len(got.Children), len(want.Children))
	}
	for i := range want.Children {
		if want.Children[i].Name != got.Children[i].Name {
			t.Fatalf("%s: child %d %q, want %q", p, i, got.Children[i].Name, want.Children[i].Name)
		}
		compareInodes(t, p+"/"+want.Children[i].Name, want.Children[i].Inode, got.Children[i].Inode)
	}
}

func TestBuiltImageRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []builder.Option
	}{
		{"defaults", nil},
		{"lz4-sha256-0x1000-notoc", []builder.Option{builder.WithCompressor(layout.CompressLZ4), builder.WithDigester(layout.DigestSHA256),
			builder.WithChunkSize(0x1000), builder.WithTOC(false)}},
		{"none-blake3-0x1000000", []builder.Option{builder.WithCompressor(layout.CompressNone), builder.WithChunkSize(0x1000000)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, src, s := buildSample(t, tc.opts...)
			got, err := img.Tree()
			if err != nil {
				t.Fatal(err)
			}
			compareInodes(t, "", s.tree.Root, got.Root)
			if got.Root.Child("big").Inode != got.Root.Child("sub").Inode.Child("hardlink").Inode {
				t.Fatal("hardlinked files do not share an inode")
			}
			if !slices.Equal(got.Prefetch, []string{"/sub", "/big"}) {
				t.Fatalf("prefetch %v", got.Prefetch)
			}
			// File contents through the reader.
			err = img.Walk(func(p string, ino *rafs.Inode) error {
				if !ino.IsReg() {
					return nil
				}
				want := s.files[lookupTree(s.tree, p)]
				buf := make([]byte, ino.Size)
				n, err := img.ReadFile(context.Background(), src, ino.Nid, buf, 0)
				if err != nil && !errors.Is(err, io.EOF) || n != len(want) || !bytes.Equal(buf, want) {
					return fmt.Errorf("%s: read %d bytes (%w), want %d", p, n, err, len(want))
				}
				// A read that straddles chunks.
				if len(want) > int(img.ChunkSize())+10 {
					mid := make([]byte, 20)
					off := int64(img.ChunkSize()) - 10
					if _, err := img.ReadFile(context.Background(), src, ino.Nid, mid, off); err != nil || !bytes.Equal(mid, want[off:off+20]) {
						return fmt.Errorf("%s: straddling read: %w", p, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			fsys := img.FS(context.Background(), src)
			if err := fstest.TestFS(fsys, "big", "sub/hardlink", "sub/名前.txt", "many/file-0699-"+strings.Repeat("x", 699%50)); err != nil {
				t.Fatal(err)
			}
			if b, err := fs.ReadFile(fsys, "link"); err != nil || string(b) != "utf-8 name\n" {
				t.Fatalf("read through symlink: %q %v", b, err)
			}
		})
	}
}

func lookupTree(t *tree.Tree, p string) *tree.Inode { return t.Lookup(p) }

// TestDirectoryLoop makes a subdirectory entry point back at the root.
func TestDirectoryLoop(t *testing.T) {
	var blob bytes.Buffer
	res, err := builder.Build(context.Background(), func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		a := tree.NewDir(0o755)
		root.SetChild("a", a)
		a.SetChild("zzzz", tree.NewDir(0o755))
		return &tree.Tree{Root: root}, nil
	}, &blob)
	if err != nil {
		t.Fatal(err)
	}
	boot := bytes.Clone(res.Bootstrap)
	img, err := rafs.Open(bytes.NewReader(boot), int64(len(boot)))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := img.LookupPath("/a")
	z, _ := img.LookupPath("/a/zzzz")
	// Rewrite the dirent of "zzzz" inside /a to point at /a itself.
	needle := make([]byte, 8)
	for i := range 8 {
		needle[i] = byte(z >> (8 * i))
	}
	i := bytes.Index(boot[8192:], needle)
	if i < 0 {
		t.Fatal("dirent not found")
	}
	for k := range 8 {
		boot[8192+i+k] = byte(a >> (8 * k))
	}
	img, err = rafs.Open(bytes.NewReader(boot), int64(len(boot)))
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Walk(func(string, *rafs.Inode) error { return nil }); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("walk of a looped tree: %v", err)
	}
	if _, err := img.Tree(); err == nil {
		t.Fatal("Tree of a looped image succeeded")
	}
}

// TestLinkCounts: a directory's nlink is 2 + its subdirectories (what
// mkfs.erofs writes and the kernel reports for the source), anything
// else's is its number of names.
func TestLinkCounts(t *testing.T) {
	img := rafstest.Build(t, func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		chain := root
		for i := range 20 { // a deep chain: each link has one subdirectory
			d := tree.NewDir(0o755)
			chain.SetChild(fmt.Sprintf("c%d", i), d)
			chain = d
		}
		many := tree.NewDir(0o755)
		root.SetChild("many", many)
		for i := range 300 {
			many.SetChild(fmt.Sprintf("d%03d", i), tree.NewDir(0o755))
		}
		f := &tree.Inode{Mode: layout.ModeReg | 0o644}
		sym := &tree.Inode{Mode: layout.ModeSymlink | 0o777, Target: "x"}
		for i := range 3 {
			many.SetChild(fmt.Sprintf("f%d", i), f)
			chain.SetChild(fmt.Sprintf("s%d", i), sym)
		}
		root.SetChild("f", f)
		return &tree.Tree{Root: root}, nil
	}).Image
	want := map[string]uint32{"": 4, "c0": 3, "c0/c1/c2/c3/c4/c5/c6/c7/c8/c9/c10/c11/c12/c13/c14/c15/c16/c17/c18/c19": 2,
		"many": 302, "many/d299": 2, "many/f0": 4, "f": 4, "c0/c1/c2/c3/c4/c5/c6/c7/c8/c9/c10/c11/c12/c13/c14/c15/c16/c17/c18/c19/s2": 3}
	for p, n := range want {
		nid, err := img.LookupPath(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		ino, err := img.Inode(nid)
		if err != nil {
			t.Fatal(err)
		}
		if ino.Nlink != n {
			t.Errorf("%q: nlink %d, want %d", p, ino.Nlink, n)
		}
	}
}
