package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

func buildSample(t *testing.T, opts ...Option) (*Result, []byte) {
	t.Helper()
	var blob bytes.Buffer
	res, err := Build(context.Background(), func(_ context.Context, w FileWriter) (*tree.Tree, error) {
		bw := w.(*BlobWriter)
		tr, _ := sampleTree(t, bw)
		return tr, nil
	}, &blob, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return res, blob.Bytes()
}

func TestBuildIsReproducible(t *testing.T) {
	for _, alg := range []layout.Compressor{layout.CompressNone, layout.CompressLZ4, layout.CompressZstd} {
		r1, b1 := buildSample(t, WithCompressor(alg), WithWorkers(3))
		r2, b2 := buildSample(t, WithCompressor(alg), WithWorkers(1))
		if !bytes.Equal(b1, b2) || !bytes.Equal(r1.Bootstrap, r2.Bootstrap) {
			t.Fatalf("%v: two builds of the same input differ", alg)
		}
		sum := sha256.Sum256(b1)
		if r1.Blob.ID() != hex.EncodeToString(sum[:]) {
			t.Fatalf("%v: blob id %s is not the blob's sha256", alg, r1.Blob.ID())
		}
	}
}

func TestDedupStoresRepeatedChunksOnce(t *testing.T) {
	var blob bytes.Buffer
	page := bytes.Repeat([]byte{'a'}, 0x1000)
	res, err := Build(context.Background(), func(_ context.Context, w FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		for _, name := range []string{"one", "two", "three"} {
			data := bytes.Repeat(page, 5) // 5 identical chunks per file
			cs, err := w.WriteFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				return nil, err
			}
			root.SetChild(name, &tree.Inode{Mode: layout.ModeReg | 0o644, Size: uint64(len(data)), Chunks: cs})
		}
		return &tree.Tree{Root: root}, nil
	}, &blob, WithChunkSize(0x1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Blob.Chunks) != 1 || res.Blob.Entry.ChunkCount != 1 {
		t.Fatalf("15 identical chunks stored as %d", len(res.Blob.Chunks))
	}
	for _, e := range res.Tree.Root.Children {
		for i, c := range e.Inode.Chunks {
			if c.Index != 0 || c.CompressedOffset != 0 || c.UncompressedSize != 0x1000 || c.FileOffset != uint64(i)*0x1000 {
				t.Fatalf("%s chunk %d = %+v", e.Name, i, c)
			}
		}
	}
}

func TestInlineBootstrapTail(t *testing.T) {
	res, blob := buildSample(t, WithInlineBootstrap(true))
	// The ToC is the last section; the inline bootstrap precedes it.
	name, size, err := layout.ParseSectionHeader(blob[len(blob)-layout.TarHeaderSize:])
	if err != nil || name != layout.SectionTOC {
		t.Fatalf("last section %q: %v", name, err)
	}
	entries := int(size) / layout.TOCEntrySize
	var names []string
	for i := range entries {
		var e layout.TOCEntry
		_ = e.Unmarshal(blob[len(blob)-layout.TarHeaderSize-int(size)+i*layout.TOCEntrySize:])
		names = append(names, e.Name)
		sec := blob[e.CompressedOffset : e.CompressedOffset+e.CompressedSize]
		if e.Name == layout.SectionBlob {
			continue // hashed with its tar header, as upstream does
		}
		if e.Flags == layout.TOCCompressNone && sha256.Sum256(sec) != e.UncompressedHash {
			t.Fatalf("section %s: digest mismatch", e.Name)
		}
	}
	want := []string{layout.SectionBlob, layout.SectionMeta, layout.SectionMetaHeader, layout.SectionDigest, layout.SectionBootstrap}
	if len(names) != len(want) {
		t.Fatalf("ToC sections %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("ToC sections %v, want %v", names, want)
		}
	}
	if res.Blob.Entry.Features&layout.BlobInlinedFSMeta == 0 || res.Blob.Entry.TOCSize != uint32(size)+layout.TarHeaderSize {
		t.Fatalf("blob entry %+v", res.Blob.Entry)
	}
}

func TestBlobOptionsValidate(t *testing.T) {
	for _, o := range []Option{WithChunkSize(3000), WithChunkSize(32 << 20), WithWorkers(0), WithCompressor(layout.CompressGzip), WithDigester(7),
		WithBlobIndex(layout.MaxBlobs - 1), WithBaseBlobs(make([]*layout.BlobEntry, layout.MaxBlobs-1))} {
		if _, err := NewBlobWriter(&bytes.Buffer{}, o); err == nil {
			t.Fatal("invalid option accepted")
		}
		if _, err := Build(context.Background(), func(context.Context, FileWriter) (*tree.Tree, error) {
			return &tree.Tree{Root: tree.NewDir(0o755)}, nil
		}, &bytes.Buffer{}, o); err == nil {
			t.Fatal("Build accepted an invalid option")
		}
	}
	if _, err := Build(context.Background(), func(context.Context, FileWriter) (*tree.Tree, error) {
		return &tree.Tree{Root: tree.NewDir(0o755)}, nil
	}, &bytes.Buffer{}, WithBlobIndex(3)); err == nil {
		t.Fatal("Build accepted a blob index that is not after its base blobs")
	}
}
