package source_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/merge"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
)

var upstreamTar = testutil.TestdataPath("upstream-nydus", "tar")

// memWriter records file data; each file gets one chunk whose digest is
// the sha256 of its data, so tests can compare what reached the writer.
type memWriter struct {
	data map[[32]byte][]byte
}

func newMemWriter() *memWriter { return &memWriter{data: map[[32]byte][]byte{}} }

func (m *memWriter) WriteFile(r io.Reader, size int64) ([]*layout.ChunkInfo, error) {
	b, err := io.ReadAll(io.LimitReader(r, size))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("short file: %d of %d bytes", len(b), size)
	}
	if size == 0 {
		return nil, nil
	}
	d := sha256.Sum256(b)
	m.data[d] = b
	return []*layout.ChunkInfo{{Digest: d, UncompressedSize: uint32(size)}}, nil
}

func (m *memWriter) content(ino *tree.Inode) []byte {
	if len(ino.Chunks) == 0 {
		return nil
	}
	return m.data[ino.Chunks[0].Digest]
}

func openVector(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join(upstreamTar, name))
	if err != nil {
		testutil.Missing(t, "upstream test vector (%v): put the shared testdata at ../shared/testdata beside the repository or set GONYDUS_TESTDATA", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestUpstreamAllEntryType(t *testing.T) {
	w := newMemWriter()
	tr, err := source.FromTar(context.Background(), openVector(t, "all-entry-type.tar"), w)
	if err != nil {
		t.Fatal(err)
	}
	h1 := tr.Lookup("/tar/dir1/dir3/hardlink1.txt")
	if h1 == nil || !h1.IsReg() || h1.Size != 15 || h1.Mode != layout.ModeReg|0o644 {
		t.Fatalf("hardlink1.txt = %+v", h1)
	}
	for _, p := range []string{"/tar/dir1/dir3/xfile.txt", "/tar/dir1/hardlink2.txt", "/tar/dir2/hardlink3.txt"} {
		if tr.Lookup(p) != h1 {
			t.Fatalf("%s does not share hardlink1.txt's inode", p)
		}
	}
	sl := tr.Lookup("/tar/dir2/symlink1.txt")
	if sl == nil || !sl.IsSymlink() || sl.Target != "../dir1/dir3/file1.txt" {
		t.Fatalf("symlink1.txt = %+v", sl)
	}
	d := tr.Lookup("/tar/dir1/dir3")
	if d == nil || !d.IsDir() || d.Mode != layout.ModeDir|0o755 {
		t.Fatalf("dir3 = %+v", d)
	}
	if got := w.content(h1); len(got) != 15 {
		t.Fatalf("hardlink1.txt content %q", got)
	}
	// The LIBARCHIVE.xattr.* records in this file name no namespace
	// ("hardlink3"), which RAFS cannot store: they are skipped.
	if len(h1.Xattrs) != 0 {
		t.Fatalf("unexpected xattrs %v", h1.Xattrs)
	}
}

func TestUpstreamMacOSTar(t *testing.T) {
	w := newMemWriter()
	tr, err := source.FromTar(context.Background(), openVector(t, "all-entry-type-macos.tar"), w)
	if err != nil {
		t.Fatal(err)
	}
	var long *tree.Inode
	for _, e := range tr.Lookup("/tar/dir1/dir3").Children {
		if strings.HasPrefix(e.Name, "this_is_really_a_very_long_name") && len(e.Name) > 200 {
			long = e.Inode
		}
	}
	if long == nil || long.Size != 10 {
		t.Fatalf("long name entry missing: %v", names(tr.Lookup("/tar/dir1/dir3")))
	}
	h := tr.Lookup("/tar/dir1/hardlink2.txt")
	if h == nil || tr.Lookup("/tar/dir2/hardlink3.txt") != h || h.UID != 501 && h.UID == 0 {
		t.Fatalf("hardlinks: %+v", h)
	}
	if ad := tr.Lookup("/tar/dir1/._dir3"); ad == nil || ad.Size != 141 {
		t.Fatalf("AppleDouble file: %+v", ad)
	}
}

func names(ino *tree.Inode) []string {
	var out []string
	if ino == nil {
		return nil
	}
	for _, e := range ino.Children {
		out = append(out, e.Name)
	}
	return out
}

func TestEmptyTar(t *testing.T) {
	tr, err := source.FromTar(context.Background(), openVector(t, "empty.tar"), newMemWriter())
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Root.IsDir() || len(tr.Root.Children) != 0 {
		t.Fatalf("root %+v", tr.Root)
	}
}

func TestCompressionDetection(t *testing.T) {
	plain := tartest.Tar(t, tartest.Header(tar.Header{Name: "a/b.txt", Typeflag: tar.TypeReg, Mode: 0o644}, "hello"))
	for name, in := range map[string][]byte{"plain": plain, "gzip": tartest.Gzip(t, plain), "zstd": tartest.Zstd(t, plain)} {
		w := newMemWriter()
		tr, err := source.FromTar(context.Background(), bytes.NewReader(in), w)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ino := tr.Lookup("/a/b.txt")
		if ino == nil || string(w.content(ino)) != "hello" {
			t.Fatalf("%s: a/b.txt = %+v", name, ino)
		}
		if a := tr.Lookup("/a"); a == nil || !a.IsDir() || a.Mode != layout.ModeDir|0o755 {
			t.Fatalf("%s: implicit parent %+v", name, a)
		}
	}
}

func TestHostileTars(t *testing.T) {
	cases := map[string][]byte{
		"dotdot escape": tartest.Tar(t, tartest.Header(tar.Header{Name: "../../etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644}, "x")),
		"inner escape":  tartest.Tar(t, tartest.Header(tar.Header{Name: "a/../../b", Typeflag: tar.TypeReg, Mode: 0o644}, "x")),
		"through symlink": tartest.Tar(t, tartest.Header(tar.Header{Name: "a", Typeflag: tar.TypeSymlink, Linkname: "/", Mode: 0o644}, ""),
			tartest.Header(tar.Header{Name: "a/etc/x", Typeflag: tar.TypeReg, Mode: 0o644}, "x")),
		"through file": tartest.Tar(t, tartest.Header(tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}, "x"),
			tartest.Header(tar.Header{Name: "f/x", Typeflag: tar.TypeReg, Mode: 0o644}, "x")),
		"hardlink escape":  tartest.Tar(t, tartest.Header(tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow", Mode: 0o644}, "")),
		"hardlink missing": tartest.Tar(t, tartest.Header(tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "nope", Mode: 0o644}, "")),
		"hardlink to dir": tartest.Tar(t, tartest.Header(tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o644}, ""),
			tartest.Header(tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "d", Mode: 0o644}, "")),
		"long component": tartest.Tar(t, tartest.Header(tar.Header{Name: strings.Repeat("n", 256), Typeflag: tar.TypeReg, Format: tar.FormatPAX, Mode: 0o644}, "x")),
		"pax global":     tartest.Tar(t, tartest.Header(tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "x"}}, "")),
		"truncated":      tartest.Tar(t, tartest.Header(tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644}, strings.Repeat("x", 2000)))[:1500],
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := source.FromTar(context.Background(), bytes.NewReader(in), newMemWriter())
			if err == nil {
				t.Fatal("accepted")
			}
			t.Logf("%v", err)
		})
	}
	// Absolute names are made relative, as tar extraction does.
	tr, err := source.FromTar(context.Background(), bytes.NewReader(tartest.Tar(t, tartest.Header(tar.Header{Name: "/abs/path", Typeflag: tar.TypeReg, Mode: 0o644}, "x"))), newMemWriter())
	if err != nil || tr.Lookup("/abs/path") == nil {
		t.Fatalf("absolute name: %v", err)
	}
}

// TestSparseTar: GNU tar --sparse archives (old GNU and PAX 1.0) are
// expanded, holes read as zeros (upstream rejects them; reading them
// correctly loses nothing).
func TestSparseTar(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(3 << 20)
	f.WriteAt([]byte("head"), 0)
	f.WriteAt([]byte("middle"), 1<<20+7)
	f.Close()
	want, _ := os.ReadFile(p)
	for _, format := range []string{"gnu", "posix"} {
		out := filepath.Join(t.TempDir(), "s.tar")
		if b, err := exec.Command("tar", "--sparse", "--format="+format, "-C", dir, "-cf", out, "sparse").CombinedOutput(); err != nil {
			t.Fatalf("tar: %v %s", err, b)
		}
		in, _ := os.ReadFile(out)
		w := newMemWriter()
		tr, err := source.FromTar(context.Background(), bytes.NewReader(in), w)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		ino := tr.Lookup("/sparse")
		if ino == nil || ino.Size != 3<<20 || !bytes.Equal(w.content(ino), want) {
			t.Fatalf("%s: sparse file not expanded correctly: %+v", format, ino)
		}
	}
}

func TestTarSemantics(t *testing.T) {
	in := tartest.Tar(t,
		tartest.Header(tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 7}, ""),
		tartest.Header(tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Uid: 1, Gid: 2, Mode: 0o644}, "first"),
		tartest.Header(tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o711, Uid: 3}, ""),
		tartest.Header(tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o644}, "second"),
		tartest.Header(tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}, ""),
		tartest.Header(tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Devmajor: 8, Devminor: 300, Mode: 0o644}, ""),
		tartest.Header(tar.Header{Name: "dev/fifo", Typeflag: tar.TypeFifo, Mode: 0o644}, ""),
		tartest.Header(tar.Header{Name: "x", Typeflag: tar.TypeReg, Format: tar.FormatPAX, PAXRecords: map[string]string{
			"SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "SCHILY.xattr.trusted.overlay.opaque": "y",
			"SCHILY.xattr.user.a": "b", "LIBARCHIVE.xattr.user.lib": "dmFsdWU="}, Mode: 0o644}, "x"),
		tartest.Header(tar.Header{Name: "stargz.index.json", Typeflag: tar.TypeReg, Mode: 0o644}, "{}"),
		tartest.Header(tar.Header{Name: "etc/.wh.removed", Typeflag: tar.TypeReg, Mode: 0o644}, ""),
		tartest.Header(tar.Header{Name: "etc/.wh..wh..opq", Typeflag: tar.TypeReg, Mode: 0o644}, ""),
	)
	w := newMemWriter()
	tr, err := source.FromTar(context.Background(), bytes.NewReader(in), w)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Root.Mode != layout.ModeDir|0o700 || tr.Root.UID != 7 {
		t.Fatalf("root attrs %+v", tr.Root)
	}
	if d := tr.Lookup("/d"); d.Mode != layout.ModeDir|0o711 || d.UID != 3 || len(d.Children) != 1 {
		t.Fatalf("explicit dir after implicit: %+v", d)
	}
	if f := tr.Lookup("/d/f"); string(w.content(f)) != "second" {
		t.Fatalf("duplicate entry: later must win, got %q", w.content(f))
	}
	if n := tr.Lookup("/dev/null"); n.Mode != layout.ModeChr|0o666 || n.Rdev != unix.Mkdev(1, 3) {
		t.Fatalf("char dev %+v", n)
	}
	if n := tr.Lookup("/dev/sda"); n.Mode&layout.ModeTypeMask != layout.ModeBlk || n.Rdev != unix.Mkdev(8, 300) {
		t.Fatalf("block dev %+v", n)
	}
	if n := tr.Lookup("/dev/fifo"); n.Mode&layout.ModeTypeMask != layout.ModeFifo {
		t.Fatalf("fifo %+v", n)
	}
	x := tr.Lookup("/x")
	want := map[string]string{"security.capability": "\x01\x00\x00\x02", "trusted.overlay.opaque": "y", "user.a": "b", "user.lib": "value"}
	for k, v := range want {
		if got, ok := x.Xattr(k); !ok || string(got) != v {
			t.Fatalf("xattr %s = %q (%v)", k, got, ok)
		}
	}
	if tr.Lookup("/stargz.index.json") != nil {
		t.Fatal("stargz.index.json kept")
	}
	// OCI spec (default): whiteouts stay as entries for merge.
	if tr.Lookup("/etc/.wh.removed") == nil || tr.Lookup("/etc/.wh..wh..opq") == nil {
		t.Fatal("OCI whiteouts dropped from the layer tree")
	}
	// overlayfs spec: converted.
	tr, err = source.FromTar(context.Background(), bytes.NewReader(in), newMemWriter(), source.WithWhiteoutSpec(merge.WhiteoutOverlayfs))
	if err != nil {
		t.Fatal(err)
	}
	if r := tr.Lookup("/etc/removed"); r == nil || r.Mode != layout.ModeChr || r.Rdev != 0 {
		t.Fatalf("overlayfs whiteout %+v", r)
	}
	if v, ok := tr.Lookup("/etc").Xattr("trusted.overlay.opaque"); !ok || string(v) != "y" {
		t.Fatal("overlayfs opaque xattr missing")
	}
	if tr.Lookup("/etc/.wh.removed") != nil {
		t.Fatal("OCI marker kept under overlayfs spec")
	}
}

func TestPrefetchPatterns(t *testing.T) {
	ps, err := source.ParsePrefetchPatterns(strings.NewReader("/usr/bin\n\n  /etc//passwd \n/"))
	if err != nil || strings.Join(ps, ",") != "/usr/bin,/etc/passwd,/" {
		t.Fatalf("patterns %v %v", ps, err)
	}
	if _, err := source.ParsePrefetchPatterns(strings.NewReader("relative")); err == nil {
		t.Fatal("relative pattern accepted")
	}
}

func TestFromDirAndTarAgree(t *testing.T) {
	testutil.RequireRoot(t, "makes devices and foreign owners")
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a/b/f"), []byte("content"), 0o640))
	must(os.Link(filepath.Join(dir, "a/b/f"), filepath.Join(dir, "hl")))
	must(os.Symlink("a/b/f", filepath.Join(dir, "sl")))
	must(unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	must(unix.Lsetxattr(filepath.Join(dir, "a"), "trusted.overlay.opaque", []byte("y"), 0))
	must(os.Lchown(filepath.Join(dir, "a/b/f"), 1000, 1000))
	tarPath := filepath.Join(t.TempDir(), "t.tar")
	if out, err := execTar(dir, tarPath); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	wd := newMemWriter()
	fromDir, err := source.FromDir(context.Background(), dir, wd)
	must(err)
	f, err := os.Open(tarPath)
	must(err)
	defer f.Close()
	wt := newMemWriter()
	fromTar, err := source.FromTar(context.Background(), f, wt)
	must(err)
	compare(t, "/", fromDir.Root, fromTar.Root, wd, wt)
	if fromDir.Lookup("/hl") != fromDir.Lookup("/a/b/f") || fromTar.Lookup("/hl") != fromTar.Lookup("/a/b/f") {
		t.Fatal("hardlink groups differ")
	}
}

func compare(t *testing.T, p string, a, b *tree.Inode, wa, wb *memWriter) {
	t.Helper()
	if a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.Size != b.Size || a.Rdev != b.Rdev || a.Target != b.Target ||
		a.Mtime != b.Mtime || a.MtimeNsec != b.MtimeNsec && p != "/" {
		t.Fatalf("%s: dir %+v vs tar %+v", p, a, b)
	}
	if !bytes.Equal(wa.content(a), wb.content(b)) {
		t.Fatalf("%s: content differs", p)
	}
	if fmt.Sprint(a.Xattrs) != fmt.Sprint(b.Xattrs) {
		t.Fatalf("%s: xattrs %v vs %v", p, a.Xattrs, b.Xattrs)
	}
	if len(a.Children) != len(b.Children) {
		t.Fatalf("%s: children %v vs %v", p, names(a), names(b))
	}
	for i := range a.Children {
		compare(t, p+a.Children[i].Name+"/", a.Children[i].Inode, b.Children[i].Inode, wa, wb)
	}
}

func TestChangingFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), bytes.Repeat([]byte("x"), 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	w := &shrinkingWriter{path: filepath.Join(dir, "f")}
	if _, err := source.FromDir(context.Background(), dir, w); err == nil || !strings.Contains(err.Error(), "while it was read") {
		t.Fatalf("file truncated during the build: %v", err)
	}
}

// shrinkingWriter truncates the file it is being fed, mid-read.
type shrinkingWriter struct{ path string }

func (s *shrinkingWriter) WriteFile(r io.Reader, size int64) ([]*layout.ChunkInfo, error) {
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	os.Truncate(s.path, 20)
	_, err := io.Copy(io.Discard, r)
	if err != nil {
		return nil, err
	}
	return nil, errors.New("short read not detected")
}

func FuzzFromTar(f *testing.F) {
	for _, name := range []string{"all-entry-type.tar", "all-entry-type-macos.tar"} {
		if b, err := os.ReadFile(filepath.Join(upstreamTar, name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = source.FromTar(context.Background(), bytes.NewReader(b), newMemWriter(), source.WithMaxEntries(10000))
	})
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]source.Option{
		"whiteout spec 7": source.WithWhiteoutSpec(merge.WhiteoutSpec(7)),
		"nil logger":      source.WithLogger(nil),
		"max entries 0":   source.WithMaxEntries(0),
	} {
		if _, err := source.FromDir(context.Background(), t.TempDir(), discardWriter{}, o); err == nil {
			t.Errorf("FromDir accepted %s", name)
		}
		if _, err := source.FromTar(context.Background(), bytes.NewReader(nil), discardWriter{}, o); err == nil {
			t.Errorf("FromTar accepted %s", name)
		}
	}
	if _, err := source.FromDir(context.Background(), t.TempDir(), discardWriter{}, source.WithMaxEntries(1), source.WithWhiteoutSpec(merge.WhiteoutNone)); err != nil {
		t.Errorf("good options refused: %v", err)
	}
}
