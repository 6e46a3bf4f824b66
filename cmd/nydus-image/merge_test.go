package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/blob"
	"github.com/gonydus/nydus/rafs/layout"
)

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// layerBootstrap packs layer (a tar, or a gzip layer for targz-ref) with
// the bootstrap inlined, as nydus-snapshotter's converter does, and writes
// the bootstrap to dir/name. It returns the RAFS blob.
func layerBootstrap(t *testing.T, dir, name, typ string, layer []byte, extra ...string) []byte {
	t.Helper()
	wd := t.TempDir()
	src := filepath.Join(wd, "layer")
	testutil.Must(t, os.WriteFile(src, layer, 0o644))
	out := filepath.Join(wd, "blob.rafs")
	args := append([]string{"create", "--log-level", "warn", "--type", typ, "--blob-inline-meta", "--features", "blob-toc", "--blob", out}, extra...)
	nydusImage(t, append(args, src)...)
	b := mustRead(t, out)
	boot, err := blob.InlineBootstrap(bytes.NewReader(b), int64(len(b)))
	testutil.Must(t, err)
	testutil.Must(t, os.WriteFile(filepath.Join(dir, name), boot, 0o644))
	return b
}

func mergedBlobs(t *testing.T, boot string) []*layout.BlobEntry {
	t.Helper()
	b := mustRead(t, boot)
	img, err := rafs.Open(bytes.NewReader(b), int64(len(b)))
	testutil.Must(t, err)
	return img.Blobs()
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	_, err := w.Write(b)
	testutil.Must(t, err)
	testutil.Must(t, w.Close())
	return buf.Bytes()
}

// TestMergeBlobFlags checks merge's per-layer blob flags against upstream's
// semantics (builder/src/merge.rs).
func TestMergeBlobFlags(t *testing.T) {
	d := t.TempDir()
	tarA := tartest.Tar(t, tartest.Dir("a/"), tartest.File("a/file", strings.Repeat("a", 5000)))
	tarB := tartest.Tar(t, tartest.Dir("b/"), tartest.File("b/file", strings.Repeat("b", 7000)))

	t.Run("native", func(t *testing.T) {
		rafsBlob := layerBootstrap(t, d, sha([]byte("native layer")), "tar-rafs", tarA)
		src := filepath.Join(d, sha([]byte("native layer")))
		digest, toc := sha(rafsBlob), strings.Repeat("7c", 32)
		out := filepath.Join(t.TempDir(), "boot")
		nydusImage(t, "merge", "--log-level", "warn", "--bootstrap", out, src, "--blob-digests", digest,
			"--blob-sizes", "12345", "--blob-toc-digests", toc, "--blob-toc-sizes", "384")
		bl := mergedBlobs(t, out)
		if len(bl) != 1 {
			t.Fatalf("%d blobs", len(bl))
		}
		e := bl[0]
		// Not a separate blob: the digest is the blob id, the size its compressed size.
		if e.ID() != digest || e.CompressedSize != 12345 || hex.EncodeToString(e.TOCDigest[:]) != toc || e.TOCSize != 384 ||
			e.MetaDigest != ([32]byte{}) || e.MetaSize != 0 {
			t.Fatalf("blob %s compressed %d toc %x/%d meta %x/%d", e.ID(), e.CompressedSize, e.TOCDigest, e.TOCSize, e.MetaDigest, e.MetaSize)
		}
	})

	t.Run("ref", func(t *testing.T) {
		layer := gz(t, tarA)
		gzHex := sha(layer)
		rafsBlob := layerBootstrap(t, d, gzHex, "targz-ref", layer)
		out := filepath.Join(t.TempDir(), "boot")
		nydusImage(t, "merge", "--log-level", "warn", "--bootstrap", out, "--output-json", out+".json", filepath.Join(d, gzHex),
			"--blob-digests", sha(rafsBlob), "--blob-sizes", "4242")
		e := mergedBlobs(t, out)[0]
		// A zran blob: the gzip layer stays the blob; the RAFS blob is its meta blob.
		if e.ID() != gzHex || e.Features&layout.BlobSeparate == 0 || hex.EncodeToString(e.MetaDigest[:]) != sha(rafsBlob) ||
			e.MetaSize != 4242 || e.CompressedSize != uint64(len(layer)) {
			t.Fatalf("blob %s features %#x meta %x/%d compressed %d (layer %d bytes)", e.ID(), e.Features, e.MetaDigest, e.MetaSize,
				e.CompressedSize, len(layer))
		}
		if got := outputBlobs(t, out+".json"); !slices.Equal(got, []string{gzHex}) {
			t.Fatalf("output json blobs %v, want the gzip layer %s", got, gzHex)
		}
	})

	t.Run("ids", func(t *testing.T) {
		stem := sha([]byte("ids layer"))
		layerBootstrap(t, d, stem, "tar-rafs", tarB)
		layerBootstrap(t, d, "named.boot", "tar-rafs", tarA)
		for _, c := range []struct {
			name string
			args []string
			want []string
		}{
			{"file name", nil, []string{stem}},
			{"original-blob-ids", []string{"--original-blob-ids", strings.Repeat("0a", 32)}, []string{strings.Repeat("0a", 32)}},
		} {
			out := filepath.Join(t.TempDir(), "boot")
			nydusImage(t, append([]string{"merge", "--log-level", "warn", "--bootstrap", out, filepath.Join(d, stem)}, c.args...)...)
			var ids []string
			for _, e := range mergedBlobs(t, out) {
				ids = append(ids, e.ID())
			}
			if !slices.Equal(ids, c.want) {
				t.Fatalf("%s: blob ids %v, want %v", c.name, ids, c.want)
			}
		}
		// With --config the bootstrap's own ids stay; so they do for a
		// file name that is not a blob id.
		cfg := filepath.Join(t.TempDir(), "config.json")
		testutil.Must(t, os.WriteFile(cfg, []byte(`{"version":2,"backend":{"type":"localfs","localfs":{"dir":"/nonexistent"}}}`), 0o644))
		for _, args := range [][]string{{"--config", cfg, filepath.Join(d, stem)}, {filepath.Join(d, "named.boot")}} {
			src := args[len(args)-1]
			out := filepath.Join(t.TempDir(), "boot")
			nydusImage(t, append([]string{"merge", "--log-level", "warn", "--bootstrap", out}, args...)...)
			l, err := loadImage(src)
			testutil.Must(t, err)
			want := l.img.Blobs()[0].ID()
			l.Close()
			if got := mergedBlobs(t, out)[0].ID(); got != want {
				t.Fatalf("merge %v: blob id %s, want the bootstrap's %s", args, got, want)
			}
		}
	})

	t.Run("chunk-dict", func(t *testing.T) {
		// The dictionary: an image of layer A, merged so its blob id is real.
		dictLayer := sha([]byte("dict layer"))
		layerBootstrap(t, d, dictLayer, "tar-rafs", tarA)
		dict := filepath.Join(t.TempDir(), "dict.boot")
		nydusImage(t, "merge", "--log-level", "warn", "--bootstrap", dict, filepath.Join(d, dictLayer))
		// A layer with A's data and new data has two blobs: the dictionary's and its own.
		both := tartest.Tar(t, tartest.Dir("a/"), tartest.File("a/file", strings.Repeat("a", 5000)),
			tartest.Dir("b/"), tartest.File("b/file", strings.Repeat("b", 7000)))
		stem := sha([]byte("layer on dict"))
		own := layerBootstrap(t, d, stem, "tar-rafs", both, "--chunk-dict", "bootstrap="+dict)
		out := filepath.Join(t.TempDir(), "boot")
		if code := run([]string{"merge", "--log-level", "error", "--bootstrap", out, filepath.Join(d, stem)}); code == 0 {
			t.Fatal("merging a layer with two blobs of its own (no --chunk-dict) succeeded; upstream refuses it")
		}
		if code := run([]string{"merge", "--log-level", "error", "--bootstrap", out, "--original-blob-ids", "short", filepath.Join(d, dictLayer)}); code == 0 {
			t.Fatal("--original-blob-ids accepted an id the device table cannot hold")
		}
		for _, arg := range []string{"bootstrap=" + dict, dict} {
			nydusImage(t, "merge", "--log-level", "warn", "--bootstrap", out, "--chunk-dict", arg, filepath.Join(d, stem),
				"--blob-digests", sha(own))
			var ids []string
			for _, e := range mergedBlobs(t, out) {
				ids = append(ids, e.ID())
			}
			// --blob-digests renames the layer's own blob, not the dictionary's.
			if want := []string{dictLayer, sha(own)}; !slices.Equal(slices.Sorted(slices.Values(ids)), slices.Sorted(slices.Values(want))) {
				t.Fatalf("--chunk-dict %s: blob ids %v, want %v", arg, ids, want)
			}
		}
	})
}

// TestMergeLowestLayerWhiteouts: whiteouts and opaque markers of the
// lowest layer delete nothing and do not appear in the merged image.
func TestMergeLowestLayerWhiteouts(t *testing.T) {
	d := t.TempDir()
	layer := tartest.Tar(t, tartest.Dir("a/"), tartest.File("a/.wh..wh..opq", ""),
		tartest.File("a/kept", "k"), tartest.File(".wh.ghost", ""), tartest.File("top", "t"))
	stem := sha([]byte("lowest layer"))
	layerBootstrap(t, d, stem, "tar-rafs", layer)
	out := filepath.Join(t.TempDir(), "boot")
	nydusImage(t, "merge", "--log-level", "warn", "--bootstrap", out, filepath.Join(d, stem))
	b := mustRead(t, out)
	img, err := rafs.Open(bytes.NewReader(b), int64(len(b)))
	testutil.Must(t, err)
	var paths []string
	testutil.Must(t, img.Walk(func(p string, _ *rafs.Inode) error { paths = append(paths, p); return nil }))
	if want := []string{"/", "/a", "/a/kept", "/top"}; !slices.Equal(paths, want) {
		t.Fatalf("merged paths %v, want %v", paths, want)
	}
}
