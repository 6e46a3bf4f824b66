package rafs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/digest"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/rafstest"
	"github.com/gonydus/nydus/rafs/tree"
)

// fuzzSeedImage builds a small image with every kind of entry, a shared
// (deduplicated) chunk, a hardlink, xattrs and a multi-chunk file, so the
// fuzzer starts from every structure the reader knows.
func fuzzSeedImage(tb testing.TB, compressor layout.Compressor) (boot, blob []byte) {
	tb.Helper()
	im := rafstest.Build(tb, func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		file := func(dir *tree.Inode, name string, data []byte) *tree.Inode {
			return rafstest.AddFile(tb, w, dir, name, data, tree.Inode{Mode: 0o644, UID: 1, GID: 2, Mtime: 1600000000})
		}
		three := bytes.Repeat([]byte("three chunks "), 0x3000/13+1)[:0x2800]
		f := file(root, "three", three)
		f.SetXattr("user.k", []byte("v"))
		file(root, "same", three[:0x1000]) // shares the first chunk of "three"
		file(root, "empty", nil)
		sub := tree.NewDir(0o700)
		sub.SetXattr("trusted.overlay.opaque", []byte("y"))
		root.SetChild("sub", sub)
		sub.SetChild("hard", f)
		file(sub, "small", []byte("small file\n"))
		root.SetChild("link", &tree.Inode{Mode: layout.ModeSymlink | 0o777, Target: "sub/small"})
		root.SetChild("fifo", &tree.Inode{Mode: layout.ModeFifo | 0o644})
		return &tree.Tree{Root: root, Prefetch: []string{"/sub"}}, nil
	}, builder.WithCompressor(compressor), builder.WithChunkSize(0x1000))
	return im.Result.Bootstrap, im.Blob
}

// imageBlobs serves every blob an image names: the upstream vector's blob by
// its id, and the seed image's blob under any other id, so that a mutated
// bootstrap still reaches chunk decoding.
func imageBlobs(img *rafs.Image, blobs map[string][]byte, fallback []byte) *rafs.LocalBlobs {
	files := map[string]io.ReaderAt{}
	for _, b := range img.Blobs() {
		if data, ok := blobs[b.ID()]; ok {
			files[b.ID()] = bytes.NewReader(data)
		} else {
			files[b.ID()] = bytes.NewReader(fallback)
		}
	}
	return rafs.NewLocalBlobs("", files)
}

// FuzzImage opens hostile bootstraps over (possibly damaged) blobs and exercises what the daemon, merge and
// unpack do with them: Tree, BlobChunks and ReadFile of every regular file
// through a real chunk source. Nothing may panic or allocate without bound,
// and every byte served must verify against the digest of its chunk.
func FuzzImage(f *testing.F) {
	blobs := map[string][]byte{}
	if boot, err := os.ReadFile(filepath.Join(upstreamDir, "bootstrap/rafs-v6-2.2.boot")); err == nil {
		if blob, err := os.ReadFile(filepath.Join(upstreamDir, "blobs", upstreamBlob)); err == nil {
			blobs[upstreamBlob] = blob
			f.Add(boot, uint32(0), uint8(0))
			f.Add(boot, uint32(200), uint8(0x10)) // a flipped byte in the first chunk
		}
	}
	var fallback []byte
	for _, c := range []layout.Compressor{layout.CompressZstd, layout.CompressLZ4} {
		boot, blob := fuzzSeedImage(f, c)
		img, err := rafs.Open(bytes.NewReader(boot), int64(len(boot)))
		if err != nil {
			f.Fatal(err)
		}
		blobs[img.Blobs()[0].ID()] = blob
		fallback = blob
		f.Add(boot, uint32(0), uint8(0))
	}
	f.Fuzz(func(t *testing.T, b []byte, flipAt uint32, flipXor uint8) {
		if len(b) > 1<<20 {
			return // cap the input; every size inside it is the image's
		}
		// The blobs may be damaged too: one byte xored, wherever it lands.
		blobs, fallback := blobs, fallback
		if flipXor != 0 {
			damaged := map[string][]byte{}
			for id, data := range blobs {
				d := bytes.Clone(data)
				d[int(flipAt)%len(d)] ^= flipXor
				damaged[id] = d
			}
			blobs, fallback = damaged, bytes.Clone(fallback)
			fallback[int(flipAt)%len(fallback)] ^= flipXor
		}
		img, err := rafs.Open(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, layout.ErrFormat) && !errors.Is(err, rafs.ErrV5) {
				t.Logf("open: %v (not a format error)", err)
			}
			return
		}
		if bc, err := img.BlobChunks(); err == nil {
			if len(bc) != len(img.Blobs()) {
				t.Fatalf("BlobChunks: %d lists for %d blobs", len(bc), len(img.Blobs()))
			}
			for bi, cs := range bc {
				for i, c := range cs {
					if int(c.BlobIndex) != bi || (i > 0 && cs[i-1].Index >= c.Index) {
						t.Fatalf("BlobChunks: blob %d entry %d (blob %d index %d) misplaced", bi, i, c.BlobIndex, c.Index)
					}
				}
			}
		}
		tr, treeErr := img.Tree()
		if treeErr == nil {
			cs := uint64(tr.ChunkSize)
			_ = tr.Walk(func(p string, ino *tree.Inode) error {
				if ino.IsReg() && uint64(len(ino.Chunks)) != (ino.Size+cs-1)/cs {
					t.Fatalf("Tree: %s of %d bytes has %d chunks of %d", p, ino.Size, len(ino.Chunks), cs)
				}
				for _, c := range ino.Chunks {
					if int(c.BlobIndex) >= len(tr.Blobs) {
						t.Fatalf("Tree: %s names blob %d of %d", p, c.BlobIndex, len(tr.Blobs))
					}
				}
				return nil
			})
		}
		src := imageBlobs(img, blobs, fallback)
		defer src.Close()
		budget := 4 << 20 // bytes read per input
		seen := map[uint64]bool{}
		walkErr := img.Walk(func(p string, ino *rafs.Inode) error {
			if ino.IsDir() {
				// A name is one path component: a name with a slash or NUL
				// would alias another path in Walk, Tree and unpack's tar.
				if ents, err := img.ReadDir(ino.Nid); err == nil {
					for _, e := range ents {
						if e.Name == "" || e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\x00") {
							t.Fatalf("%s: directory entry %q accepted", p, e.Name)
						}
					}
				}
			}
			if !ino.IsReg() || seen[ino.Nid] || budget <= 0 {
				return nil
			}
			seen[ino.Nid] = true
			chunks, err := img.Chunks(ino.Nid)
			if err != nil {
				return nil
			}
			n := min(ino.Size, uint64(budget))
			budget -= int(n)
			data := make([]byte, n)
			got, err := img.ReadFile(context.Background(), src, ino.Nid, data, 0)
			if got > len(data) {
				t.Fatalf("%s: read %d bytes into %d", p, got, len(data))
			}
			cs := uint64(img.ChunkSize())
			for _, c := range chunks {
				end := c.Info.FileOffset + uint64(c.Info.UncompressedSize)
				if end > uint64(got) {
					break
				}
				if digest.Sum(c.Blob.Digester, data[c.Info.FileOffset:end]) != c.Info.Digest {
					t.Fatalf("%s: bytes %d-%d served (err %v) do not match chunk %d's digest", p, c.Info.FileOffset, end, err, c.Info.FileOffset/cs)
				}
			}
			return nil
		})
		if treeErr == nil && walkErr != nil {
			t.Fatalf("Tree succeeded but Walk failed: %v", walkErr)
		}
	})
}
