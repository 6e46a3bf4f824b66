package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/blob"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// TestUpstreamBlobTail reads the ToC of the upstream fixture blob: its
// digest section must equal the bootstrap's chunk-table digests.
func TestUpstreamBlobTail(t *testing.T) {
	data := testutil.ReadTestdata(t, "upstream-nydus", "blobs/be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef")
	boot := testutil.ReadTestdata(t, "upstream-nydus", "bootstrap/rafs-v6-2.2.boot")
	r := bytes.NewReader(data)
	secs, err := blob.Sections(r, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range secs {
		names = append(names, s.Name)
	}
	t.Logf("sections %v", names)
	digests, err := blob.ReadSection(r, int64(len(data)), layout.SectionDigest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := rafs.Open(bytes.NewReader(boot), int64(len(boot)))
	if err != nil {
		t.Fatal(err)
	}
	if len(digests) != 2*32 {
		t.Fatalf("digest section of %d bytes", len(digests))
	}
	for _, name := range []string{"lib.rs", "sync_io.rs"} {
		nid, _ := img.LookupPath(name)
		cs, err := img.Chunks(nid)
		if err != nil {
			t.Fatal(err)
		}
		i := cs[0].Info.Index
		if !bytes.Equal(digests[i*32:i*32+32], cs[0].Info.Digest[:]) {
			t.Fatalf("%s: digest %d differs from the chunk table", name, i)
		}
	}
	hdr, err := blob.ReadSection(r, int64(len(data)), layout.SectionMetaHeader)
	if err != nil {
		t.Fatal(err)
	}
	var h layout.CCTHeader
	if err := h.Unmarshal(hdr); err != nil {
		t.Fatal(err)
	}
	if err := h.MatchesBlob(img.Blobs()[0]); err != nil {
		t.Fatal(err)
	}
}

func buildInline(t *testing.T, toc bool) ([]byte, *builder.Result) {
	t.Helper()
	var out bytes.Buffer
	res, err := builder.Build(context.Background(), func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		for i, s := range []string{"hello\n", string(bytes.Repeat([]byte("abc"), 5000))} {
			data := []byte(s)
			chunks, err := w.WriteFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				return nil, err
			}
			root.SetChild([]string{"a", "b"}[i], &tree.Inode{Mode: layout.ModeReg | 0o644, Size: uint64(len(data)), Chunks: chunks})
		}
		return &tree.Tree{Root: root}, nil
	}, &out, builder.WithInlineBootstrap(true), builder.WithTOC(toc))
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), res
}

// TestInlineBootstrap extracts the bootstrap from blobs built with and
// without a ToC, resolves the placeholder id and reads files through it.
func TestInlineBootstrap(t *testing.T) {
	for _, toc := range []bool{true, false} {
		data, res := buildInline(t, toc)
		r := bytes.NewReader(data)
		if blob.IsBootstrap(r, int64(len(data))) {
			t.Fatal("a blob was taken for a bootstrap")
		}
		boot, err := blob.InlineBootstrap(r, int64(len(data)))
		if err != nil {
			t.Fatalf("toc=%v: %v", toc, err)
		}
		if !blob.IsBootstrap(bytes.NewReader(boot), int64(len(boot))) {
			t.Fatal("extracted bootstrap lacks the EROFS magic")
		}
		if n, err := blob.ResolvePlaceholder(boot, res.Blob.ID()); err != nil || n != 1 {
			t.Fatalf("resolve placeholder: %d, %v", n, err)
		}
		img, err := rafs.Open(bytes.NewReader(boot), int64(len(boot)))
		if err != nil {
			t.Fatal(err)
		}
		if img.Blobs()[0].ID() != res.Blob.ID() {
			t.Fatalf("blob id %s, want %s", img.Blobs()[0].ID(), res.Blob.ID())
		}
		src := rafs.NewLocalBlobs("", map[string]io.ReaderAt{res.Blob.ID(): r})
		nid, err := img.LookupPath("/b")
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 15000)
		if n, err := img.ReadFile(context.Background(), src, nid, got, 0); err != nil || n != 15000 || !bytes.Equal(got, bytes.Repeat([]byte("abc"), 5000)) {
			t.Fatalf("toc=%v: read b: %d %v", toc, n, err)
		}
	}
}

func TestCorruptTail(t *testing.T) {
	data, _ := buildInline(t, true)
	// Damage the compressed bootstrap: its sha256 or zstd check must fail.
	secs, err := blob.Sections(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := blob.Find(secs, layout.SectionBootstrap)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(data)
	bad[s.Offset+s.Size/2] ^= 0xff
	if _, err := blob.InlineBootstrap(bytes.NewReader(bad), int64(len(bad))); err == nil {
		t.Fatal("corrupt inline bootstrap accepted")
	}
	if _, err := blob.ReadSection(bytes.NewReader(data), int64(len(data)), "nope"); !errors.Is(err, blob.ErrNoSection) {
		t.Fatalf("missing section: %v", err)
	}
	for _, n := range []int{0, 100, 511, 512, len(data) - 1} {
		if _, err := blob.InlineBootstrap(bytes.NewReader(data[:n]), int64(n)); err == nil {
			t.Fatalf("truncated to %d: accepted", n)
		}
	}
}

func FuzzSections(f *testing.F) {
	f.Add(testutil.ReadTestdata(f, "upstream-nydus", "blobs/be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		secs, err := blob.Sections(r, int64(len(b)))
		if err != nil {
			return
		}
		for _, s := range secs {
			// No skip for large claimed sizes: a section that claims more
			// than its stored bytes can expand to must be refused before
			// anything of that size is allocated.
			if out, err := blob.Read(r, int64(len(b)), s); err == nil && uint64(len(out)) != s.UncompressedSize {
				t.Fatalf("section %q: %d bytes read, %d claimed", s.Name, len(out), s.UncompressedSize)
			}
		}
	})
}
