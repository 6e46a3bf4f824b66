package tartest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/gonydus/nydus/internal/testutil"
)

// got is what the tests check of a tar entry.
type got struct {
	typ        byte
	mode       int64
	link, data string
}

func TestEntries(t *testing.T) {
	when := time.Unix(1600000000, 0)
	gz := TarGz(t,
		Dir("d/"),
		File("d/f", "hello", Mode(0o600), Owner(1, 2), Xattr("user.k", "v"), ModTime(when)),
		File("d/bin", "", Bytes([]byte{0, 1, 2})),
		Symlink("d/s", "f"),
		Hardlink("d/h", "d/f"),
		Whiteout("d/gone"),
		Opaque("o"),
		Char("c", 1, 3),
		Block("b", 7, 0),
		Fifo("p"),
		Header(tar.Header{Name: "../x", Typeflag: tar.TypeReg, Mode: 0o644}, "x"),
	)
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	want := map[string]got{
		"d/":             {tar.TypeDir, 0o755, "", ""},
		"d/f":            {tar.TypeReg, 0o600, "", "hello"},
		"d/bin":          {tar.TypeReg, 0o644, "", "\x00\x01\x02"},
		"d/s":            {tar.TypeSymlink, 0o777, "f", ""},
		"d/h":            {tar.TypeLink, 0o644, "d/f", ""},
		"d/.wh.gone":     {tar.TypeReg, 0o644, "", ""},
		"o/.wh..wh..opq": {tar.TypeReg, 0o644, "", ""},
		"c":              {tar.TypeChar, 0o644, "", ""},
		"b":              {tar.TypeBlock, 0o644, "", ""},
		"p":              {tar.TypeFifo, 0o644, "", ""},
		"../x":           {tar.TypeReg, 0o644, "", "x"},
	}
	n := 0
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		w, ok := want[h.Name]
		if !ok || h.Typeflag != w.typ || h.Mode != w.mode || h.Linkname != w.link || string(data) != w.data {
			t.Fatalf("%s: type %c mode %o link %q data %q", h.Name, h.Typeflag, h.Mode, h.Linkname, data)
		}
		n++
		switch h.Name {
		case "d/f":
			if h.Uid != 1 || h.Gid != 2 || h.PAXRecords["SCHILY.xattr.user.k"] != "v" || !h.ModTime.Equal(when) {
				t.Fatalf("d/f: owner %d:%d records %v mtime %v", h.Uid, h.Gid, h.PAXRecords, h.ModTime)
			}
		case "../x": // Header writes what it is given
		case "c", "b":
			if h.Devmajor == 0 && h.Devminor == 0 {
				t.Fatalf("%s: device 0:0", h.Name)
			}
		default:
			if !h.ModTime.Equal(MTime) {
				t.Fatalf("%s: mtime %v", h.Name, h.ModTime)
			}
		}
	}
	if n != len(want) {
		t.Fatalf("%d entries, want %d", n, len(want))
	}
	if !bytes.Equal(Tar(t, File("a", "b")), Tar(t, File("a", "b"))) {
		t.Fatal("the same entries gave different streams")
	}
}

func TestFiles(t *testing.T) {
	entries := []Entry{Dir("d/"), File("d/f", "one"), File("./g", "two"), Symlink("s", "d/f")}
	for name, stream := range map[string][]byte{"tar": Tar(t, entries...), "tar.gz": TarGz(t, entries...)} {
		got := Files(t, stream)
		if len(got) != 2 || string(got["/d/f"]) != "one" || string(got["/g"]) != "two" {
			t.Fatalf("%s: %q", name, got)
		}
	}
}

func TestTreeGz(t *testing.T) {
	root := t.TempDir()
	for name, data := range map[string]string{"a": "one", "sub/b": "two", "big": string(make([]byte, 100))} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(root, "a"), filepath.Join(root, "sub", "a-again")); err != nil {
		t.Fatal(err)
	}
	gz := TreeGz(t, 1<<20, root)
	base := "/" + filepath.Base(root)
	got := Files(t, gz)
	if len(got) != 3 || string(got[base+"/a"]) != "one" || string(got[base+"/sub/b"]) != "two" || len(got[base+"/big"]) != 100 {
		t.Fatalf("%d files: %v", len(got), slices.Collect(maps.Keys(got)))
	}
	path := filepath.Join(t.TempDir(), "layer.tar.gz")
	if err := os.WriteFile(path, gz, 0o644); err != nil {
		t.Fatal(err)
	}
	if d := GunzipTime(t, path); d <= 0 {
		t.Fatalf("gzip -dc took %v", d)
	}
}

func TestRandomGz(t *testing.T) {
	a, b := RandomGz(t, 1, 3<<20), RandomGz(t, 1, 3<<20)
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed gave different layers")
	}
	if bytes.Equal(a, RandomGz(t, 2, 3<<20)) {
		t.Fatal("another seed gave the same layer")
	}
	total := 0
	for _, d := range Files(t, a) {
		total += len(d)
	}
	if total < 3<<20 || len(Files(t, a)) < 2 {
		t.Fatalf("%d files, %d bytes", len(Files(t, a)), total)
	}
}

func TestCompress(t *testing.T) {
	plain := bytes.Repeat([]byte("nydus "), 1000)
	zr, err := gzip.NewReader(bytes.NewReader(Gzip(t, plain)))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("gzip round trip: %v", err)
	}
	d, err := zstd.NewReader(bytes.NewReader(Zstd(t, plain)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got, err := io.ReadAll(d); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("zstd round trip: %v", err)
	}
}

func TestFromDir(t *testing.T) {
	root := t.TempDir()
	testutil.Must(t, os.MkdirAll(filepath.Join(root, "d/e"), 0o750))
	testutil.Must(t, os.WriteFile(filepath.Join(root, "d/f"), []byte("one"), 0o600))
	testutil.Must(t, os.Link(filepath.Join(root, "d/f"), filepath.Join(root, "g")))
	testutil.Must(t, os.Symlink("d/f", filepath.Join(root, "s")))
	when := time.Unix(1600000000, 123456789)
	testutil.Must(t, os.Chtimes(filepath.Join(root, "d/f"), when, when))
	tr := tar.NewReader(bytes.NewReader(FromDir(t, root)))
	want := map[string]got{
		"d/":   {tar.TypeDir, 0o750, "", ""},
		"d/e/": {tar.TypeDir, 0o750, "", ""},
		"d/f":  {tar.TypeReg, 0o600, "", "one"},
		"g":    {tar.TypeLink, 0o600, "d/f", ""},
		"s":    {tar.TypeSymlink, 0o777, "d/f", ""},
	}
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		testutil.Must(t, err)
		data, _ := io.ReadAll(tr)
		names = append(names, h.Name)
		if w := want[h.Name]; h.Typeflag != w.typ || h.Mode&0o7777 != w.mode || h.Linkname != w.link || string(data) != w.data {
			t.Fatalf("%s: type %c mode %o link %q data %q, want %+v", h.Name, h.Typeflag, h.Mode, h.Linkname, data, w)
		}
		if h.Name == "d/f" && !h.ModTime.Equal(when) {
			t.Fatalf("d/f: mtime %v, want %v", h.ModTime, when)
		}
	}
	if !slices.Equal(names, []string{"d/", "d/e/", "d/f", "g", "s"}) {
		t.Fatalf("entries %q", names)
	}
}
