package unpack_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/rafstest"
	"github.com/gonydus/nydus/rafs/tree"
	"github.com/gonydus/nydus/rafs/unpack"
)

var upstreamDir = testutil.TestdataPath("upstream-nydus")

func seedImage(tb testing.TB) (boot, blob []byte) {
	tb.Helper()
	im := rafstest.Build(tb, func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		file := func(dir *tree.Inode, name string, data []byte) *tree.Inode {
			return rafstest.AddFile(tb, w, dir, name, data, tree.Inode{Mode: 0o640, UID: 3, GID: 4, Mtime: 1600000000})
		}
		f := file(root, "two", bytes.Repeat([]byte("two chunks\n"), 0x1800/11+1)[:0x1800])
		f.SetXattr("user.a", []byte("b"))
		sub := tree.NewDir(0o750)
		root.SetChild("sub", sub)
		sub.SetChild("hard", f)
		file(sub, "one", []byte("one\n"))
		root.SetChild("link", &tree.Inode{Mode: layout.ModeSymlink | 0o777, Target: "sub/one"})
		root.SetChild("chr", &tree.Inode{Mode: layout.ModeChr | 0o600, Rdev: 0x103})
		return &tree.Tree{Root: root}, nil
	}, builder.WithChunkSize(0x1000))
	return im.Result.Bootstrap, im.Blob
}

// FuzzWriteTar unpacks hostile bootstraps to a tar stream as
// `nydus-image unpack` does. Nothing may panic; a tar that is written
// re-reads with archive/tar, names no path outside the layer, and every
// regular file in it holds exactly what the image serves for that path.
func FuzzWriteTar(f *testing.F) {
	boot, blob := seedImage(f)
	f.Add(boot)
	blobs := [][]byte{blob}
	if b, err := os.ReadFile(filepath.Join(upstreamDir, "bootstrap/rafs-v6-2.2.boot")); err == nil {
		if ub, err := os.ReadFile(filepath.Join(upstreamDir, "blobs/be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef")); err == nil {
			f.Add(b)
			blobs = append(blobs, ub)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkWriteTar(t, b, blobs) })
}

// TestWriteTarUnsortedDirectory: a directory whose entries are out of
// name order (a fuzz find: the root's "sub" and "two" swapped) lists a
// name that lookup, a binary search as in the kernel, cannot find; the
// tar follows the listing and holds what the image serves for the listed
// inode.
func TestWriteTarUnsortedDirectory(t *testing.T) {
	boot, blob := seedImage(t)
	names := []byte("...chrlinksubtwo") // the root's names: ".", "..", "chr", "link", "sub", "two"
	i := bytes.Index(boot, names)
	if i < 6*12 || bytes.Contains(boot[i+1:], names) {
		t.Fatalf("the root directory's names are not where expected (%d)", i)
	}
	blk := boot[i-6*12:]
	copy(blk[6*12+10:], "twosub")
	for k := range 8 {
		blk[4*12+k], blk[5*12+k] = blk[5*12+k], blk[4*12+k] // nid
	}
	blk[4*12+10], blk[5*12+10] = blk[5*12+10], blk[4*12+10] // file type
	img, err := rafs.Open(bytes.NewReader(boot), int64(len(boot)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.LookupPath("two"); !errors.Is(err, rafs.ErrNotExist) {
		t.Fatalf("lookup of two in the unsorted root: %v, want not found (the case is not made)", err)
	}
	if _, err := listedPath(img, "two"); err != nil {
		t.Fatal(err)
	}
	checkWriteTar(t, boot, [][]byte{blob})
}

// checkWriteTar is FuzzWriteTar's check of one bootstrap b (blobs serve
// its blobs in turn).
func checkWriteTar(t *testing.T, b []byte, blobs [][]byte) {
	if len(b) > 1<<20 {
		return
	}
	img, err := rafs.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return
	}
	tr, err := img.Tree()
	if err != nil {
		return
	}
	var total uint64
	_ = tr.Walk(func(_ string, ino *tree.Inode) error {
		if ino.IsReg() {
			total += ino.Size
		}
		return nil
	})
	if total > 16<<20 {
		return // bound the work per input
	}
	files := map[string]io.ReaderAt{}
	for i, e := range img.Blobs() {
		files[e.ID()] = bytes.NewReader(blobs[i%len(blobs)])
	}
	src := rafs.NewLocalBlobs("", files)
	defer src.Close()
	var out bytes.Buffer
	if err := unpack.WriteTar(context.Background(), &out, tr, src); err != nil {
		return
	}
	r := tar.NewReader(&out)
	for {
		h, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("written tar does not re-read: %v", err)
		}
		clean := path.Clean(h.Name)
		if path.IsAbs(h.Name) || clean == ".." || strings.HasPrefix(clean, "../") {
			t.Fatalf("tar entry %q escapes the layer", h.Name)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		nid, err := img.LookupPath(h.Name)
		if errors.Is(err, rafs.ErrNotExist) {
			// A hostile directory's entries out of name order: lookup
			// (a binary search, as the kernel's) misses a name that
			// the listing, which the tar follows, shows.
			nid, err = listedPath(img, h.Name)
		}
		if err != nil {
			t.Fatalf("tar entry %q is not a path of the image: %v", h.Name, err)
		}
		want := make([]byte, len(got))
		if n, err := img.ReadFile(context.Background(), src, nid, want, 0); (err != nil && !errors.Is(err, io.EOF)) || n != len(got) {
			t.Fatalf("%s: the image serves %d bytes (%v), the tar holds %d", h.Name, n, err, len(got))
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: tar content differs from the image's", h.Name)
		}
	}
}

// listedPath resolves p by the directories' listings (ReadDir, in
// stored order) instead of by lookup.
func listedPath(img *rafs.Image, p string) (uint64, error) {
	nid := img.Root()
	for _, name := range strings.Split(path.Clean(p), "/") {
		ents, err := img.ReadDir(nid)
		if err != nil {
			return 0, err
		}
		found := false
		for _, e := range ents {
			if e.Name == name {
				nid, found = e.Nid, true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("%q not listed in directory %d", name, nid)
		}
	}
	return nid, nil
}
