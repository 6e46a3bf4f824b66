package snapshotterconverter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nydus-snapshotter/pkg/converter"
	"github.com/opencontainers/go-digest"
)

// blobReader is a content.ReaderAt over bytes.
type blobReader struct{ *bytes.Reader }

func (blobReader) Close() error { return nil }

func readerOf(b []byte) blobReader { return blobReader{bytes.NewReader(b)} }

func timeout() *time.Duration { d := stepTimeout; return &d }

// within runs f and fails the test if it takes longer than stepTimeout:
// the converter's goroutines must not hang the suite if a builder call
// goes wrong.
func within(t *testing.T, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(stepTimeout + 30*time.Second):
		t.Fatalf("%s did not finish within %v", what, stepTimeout+30*time.Second)
	}
}

// pack runs converter.Pack over layer (a tar, or for OCIRef the gzip
// layer itself) and returns the Nydus blob it writes.
func pack(t *testing.T, layer []byte, opt converter.PackOption) []byte {
	t.Helper()
	bin, _ := binaries(t)
	opt.BuilderPath, opt.WorkDir, opt.Timeout = bin, t.TempDir(), timeout()
	var out bytes.Buffer
	within(t, "converter.Pack", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
		defer cancel()
		w, err := converter.Pack(ctx, &out, opt)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, bytes.NewReader(layer)); err != nil {
			w.Close()
			return err
		}
		return w.Close()
	})
	if out.Len() == 0 {
		t.Fatal("converter.Pack wrote an empty blob")
	}
	return out.Bytes()
}

// nydusLayer is a packed layer as a content store would hold it.
type nydusLayer struct {
	blob     []byte
	digest   digest.Digest
	original *digest.Digest // the gzip layer of an OCIRef layer
}

func layerOf(blob []byte) nydusLayer { return nydusLayer{blob: blob, digest: digest.FromBytes(blob)} }

// merge runs converter.Merge and returns the bootstrap (from the tar when
// opt.WithTar) and the blob digests it reports.
func merge(t *testing.T, layers []nydusLayer, opt converter.MergeOption) ([]byte, []digest.Digest) {
	t.Helper()
	bin, _ := binaries(t)
	opt.BuilderPath, opt.WorkDir, opt.Timeout = bin, t.TempDir(), timeout()
	var in []converter.Layer
	for _, l := range layers {
		in = append(in, converter.Layer{Digest: l.digest, OriginalDigest: l.original, ReaderAt: readerOf(l.blob)})
	}
	var out bytes.Buffer
	var blobs []digest.Digest
	within(t, "converter.Merge", func() error {
		var err error
		blobs, err = converter.Merge(context.Background(), in, &out, opt)
		return err
	})
	if !opt.WithTar {
		return out.Bytes(), blobs
	}
	boot, err := readTarEntry(out.Bytes(), "image/image.boot")
	if err != nil {
		t.Fatalf("merged bootstrap layer: %v", err)
	}
	return boot, blobs
}

// blobDir writes files named by the hex of their sha256 into a directory,
// as a localfs backend (or a registry) serves blobs.
func blobDir(t *testing.T, blobs ...[]byte) string {
	t.Helper()
	d := t.TempDir()
	for _, b := range blobs {
		if err := os.WriteFile(filepath.Join(d, hexSum(b)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func hexes(ds []digest.Digest) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Encoded())
	}
	return out
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// richLayer is a base layer with every kind of entry and attribute.
func richLayer() []entry {
	long := strings.Repeat("long-name-", 20)
	return stamp(0, []entry{
		dir("etc", 0o755, 0, 0),
		file("etc/os-release", 0o644, 0, 0, []byte("ID=demo\nVERSION_ID=1\n")),
		file("etc/shadow", 0o640, 0, 42, []byte("root:*:19000:0:99999:7:::\n")),
		withXattr(file("etc/with-xattr", 0o644, 0, 0, []byte("x\n")), "user.demo", "value-1"),
		symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
		dir("home", 0o755, 0, 0),
		dir("home/user", 0o700, 1000, 1000),
		file("home/user/.profile", 0o600, 1000, 1000, []byte("export PATH=/bin\n")),
		file("home/user/big.bin", 0o644, 1000, 1000, pseudo("big", 2<<20+123456)),
		dir("usr", 0o755, 0, 0),
		dir("usr/bin", 0o755, 0, 0),
		file("usr/bin/tool", 0o4755, 0, 0, pseudo("tool", 70000)),
		hardlink("usr/bin/tool-alias", "usr/bin/tool"),
		hardlink("usr/bin/tool-alias2", "usr/bin/tool"),
		symlink("bin", "usr/bin"),
		dir("usr/share", 0o755, 0, 0),
		file("usr/share/dup-1", 0o644, 0, 0, pseudo("dup", 300<<10)),
		file("usr/share/dup-2", 0o444, 2, 3, pseudo("dup", 300<<10)),
		file("usr/share/名前 with space", 0o644, 0, 0, []byte("unicode\n")),
		file("usr/share/"+long, 0o644, 0, 0, []byte("long\n")),
		dir("tmp", 0o1777, 0, 0),
		dir("var", 0o755, 0, 0),
		file("var/empty", 0o644, 0, 0, nil),
		dir("run", 0o755, 0, 0),
		{path: "run/fifo", kind: kFifo, perm: 0o600, uid: 7, gid: 8},
		dir("dev", 0o755, 0, 0),
		{path: "dev/null", kind: kChar, perm: 0o666, major: 1, minor: 3},
		dir("a", 0o755, 0, 0), dir("a/b", 0o750, 0, 0), dir("a/b/c", 0o755, 0, 0), dir("a/b/c/d", 0o755, 0, 0),
		dir("a/b/c/d/e", 0o755, 0, 0), file("a/b/c/d/e/leaf", 0o644, 0, 0, []byte("deep\n")),
		dir("a/b2", 0o755, 0, 0), dir("a/b3", 0o2755, 0, 50),
	})
}

// TestPackChunkDict: converter.Pack (fs-version 6) against a chunk
// dictionary made by converter.Merge; the layer blob leaves the shared
// data to the dictionary's blob, and the merged image mounts equal to the
// layer.
func TestPackChunkDict(t *testing.T) {
	shared := pseudo("shared", 3<<20)
	dictLayer := stamp(5, []entry{
		dir("opt", 0o755, 0, 0),
		file("opt/shared.bin", 0o644, 0, 0, shared),
		file("opt/other", 0o644, 0, 0, []byte("only in the dictionary image\n")),
	})
	dictBlob := pack(t, layerTar(t, dictLayer), converter.PackOption{FsVersion: "6"})
	// A chunk dictionary is an image's bootstrap: merge the dictionary image.
	dictBoot, dictBlobs := merge(t, []nydusLayer{layerOf(dictBlob)}, converter.MergeOption{FsVersion: "6"})
	if got, want := hexes(dictBlobs), []string{hexSum(dictBlob)}; !slices.Equal(got, want) {
		t.Fatalf("dictionary image blobs %v, want %v", got, want)
	}
	wd := t.TempDir()
	dictPath := writeFile(t, wd, "dict.boot", dictBoot)

	layer := append(richLayer(), stamp(6, []entry{dir("srv", 0o755, 0, 0), file("srv/shared-copy.bin", 0o600, 9, 9, shared)})...)
	tarball := layerTar(t, layer)
	plain := pack(t, tarball, converter.PackOption{FsVersion: "6"})
	blob := pack(t, tarball, converter.PackOption{FsVersion: "6", ChunkDictPath: dictPath})
	t.Logf("layer blob: %d bytes with the dictionary, %d without", len(blob), len(plain))
	if len(blob)+len(shared) > len(plain)+64<<10 {
		t.Fatalf("with the chunk dictionary the blob is %d bytes, without %d: the %d shared bytes were stored again",
			len(blob), len(plain), len(shared))
	}
	boot, blobs := merge(t, []nydusLayer{layerOf(blob)}, converter.MergeOption{FsVersion: "6", ChunkDictPath: dictPath})
	if got, want := hexes(blobs), []string{hexSum(blob), hexSum(dictBlob)}; !sameSet(got, want) {
		t.Fatalf("merged image blobs %v, want the layer's and the dictionary's %v", got, want)
	}
	bootPath := writeFile(t, wd, "image.boot", boot)
	checkMounts(t, bootPath, blobDir(t, blob, dictBlob), expect(t, false, layer))
}

// upperLayers change richLayer with every kind of whiteout.
func upperLayers() [][]entry {
	l1 := stamp(1, []entry{
		dir("etc", 0o700, 5, 6), // attributes of an existing directory change
		whiteout("etc/shadow"),
		file("etc/os-release", 0o600, 0, 0, []byte("ID=demo\nVERSION_ID=2\n")),
		dir("home", 0o755, 0, 0),
		dir("home/user", 0o750, 1000, 1000),
		opaque("home/user"), // hides .profile and big.bin
		file("home/user/new.txt", 0o644, 1000, 1000, []byte("after opaque\n")),
		dir("bin", 0o755, 0, 0), // a symlink replaced by a directory
		file("bin/sh", 0o755, 0, 0, pseudo("sh", 5000)),
		dir("a", 0o755, 0, 0),
		whiteout("a/b"), // a deep tree deleted and re-created in the same layer
		dir("a/b", 0o711, 3, 3),
		file("a/b/again", 0o644, 0, 0, []byte("re-created\n")),
		whiteout("a/b2"),
	})
	l2 := stamp(2, []entry{
		dir("usr", 0o755, 0, 0),
		dir("usr/bin", 0o755, 0, 0),
		whiteout("usr/bin/tool"), // one name of a hard link group
		dir("etc", 0o755, 0, 0),
		symlink("etc/shadow", "/dev/null"), // re-created after an earlier whiteout
		dir("var", 0o755, 0, 0),
		dir("var/empty", 0o755, 0, 0), // a file replaced by a directory
		file("var/empty/now-a-dir", 0o644, 0, 0, []byte("dir\n")),
		dir("srv", 0o755, 0, 0),
		dir("srv/data", 0o755, 0, 0),
		file("srv/data/file", 0o644, 11, 12, pseudo("srv", 1<<20+1)),
		dir("usr/share", 0o755, 0, 0),
		file("usr/share/dup-3", 0o644, 0, 0, pseudo("dup", 300<<10)),
	})
	return [][]entry{l1, l2}
}

// TestMergeNative: converter.Merge of native layers (whiteouts, opaque
// directories, replacements, and a layer with metadata only): the blob
// list is the digests of the layers that hold data (as upstream, a
// metadata-only layer's blob is not referenced), and the merged image
// mounts equal to the layers applied in order; the same with the lowest
// layer given as --parent-bootstrap.
func TestMergeNative(t *testing.T) {
	metaOnly := stamp(3, []entry{
		dir("etc", 0o755, 0, 0),
		symlink("etc/alias", "os-release"),
		dir("empty-dir", 0o700, 4, 4),
	})
	layers := append(append([][]entry{richLayer()}, upperLayers()...), metaOnly)
	var packed []nydusLayer
	var blobs [][]byte
	for _, es := range layers {
		b := pack(t, layerTar(t, es), converter.PackOption{FsVersion: "6", Compressor: "lz4_block"})
		packed = append(packed, layerOf(b))
		blobs = append(blobs, b)
	}
	var want []string
	for _, l := range packed[:3] {
		want = append(want, l.digest.Encoded())
	}
	boot, got := merge(t, packed, converter.MergeOption{FsVersion: "6", WithTar: true})
	if !sameSet(hexes(got), want) {
		t.Fatalf("merge reported blobs %v, want the blob digests of the layers with data %v", hexes(got), want)
	}
	wd := t.TempDir()
	bdir := blobDir(t, blobs...)
	checkMounts(t, writeFile(t, wd, "image.boot", boot), bdir, expect(t, true, layers...))

	t.Run("parent-bootstrap", func(t *testing.T) {
		parent, _ := merge(t, packed[:1], converter.MergeOption{FsVersion: "6"})
		boot, got := merge(t, packed[1:], converter.MergeOption{FsVersion: "6", ParentBootstrapPath: writeFile(t, wd, "parent.boot", parent)})
		if !sameSet(hexes(got), want) {
			t.Fatalf("merge on a parent reported blobs %v, want %v", hexes(got), want)
		}
		checkMounts(t, writeFile(t, wd, "child.boot", boot), bdir, expect(t, true, layers...))
	})
}

// TestMergeOCIRef: converter.Pack with OCIRef (zran) over gzip layers and
// converter.Merge with OCIRef as nydusify does: each source bootstrap is
// named by its gzip layer's digest and the RAFS blob digests, sizes and
// ToC digests are passed. The merged image must name the gzip layers as
// its blobs (their data is there) with the RAFS blobs as their meta
// blobs, and mount from the gzip layers equal to the layers applied.
func TestMergeOCIRef(t *testing.T) {
	layers := append([][]entry{richLayer()}, upperLayers()...)
	var packed []nydusLayer
	var files [][]byte
	var gzDigests []string
	for _, es := range layers {
		gz := gzipped(t, layerTar(t, es))
		rafsBlob := pack(t, gz, converter.PackOption{FsVersion: "6", OCIRef: true})
		l := layerOf(rafsBlob)
		orig := digest.FromBytes(gz)
		l.original = &orig
		packed = append(packed, l)
		files = append(files, gz, rafsBlob)
		gzDigests = append(gzDigests, orig.Encoded())
		// The RAFS blob of a zran layer holds metadata, not the data.
		if len(gz) > 1<<20 && len(rafsBlob) > len(gz)/8 {
			t.Fatalf("zran RAFS blob of %d bytes for a %d-byte gzip layer: it should hold metadata only", len(rafsBlob), len(gz))
		}
		t.Logf("layer %d: gzip %d bytes, zran RAFS blob %d bytes", len(packed)-1, len(gz), len(rafsBlob))
	}
	boot, got := merge(t, packed, converter.MergeOption{FsVersion: "6", OCIRef: true, WithTar: true})
	if !sameSet(hexes(got), gzDigests) {
		t.Fatalf("merge reported blobs %v, want the gzip layer digests %v", hexes(got), gzDigests)
	}
	table, err := blobTable(boot)
	if err != nil {
		t.Fatal(err)
	}
	if len(table) != len(packed) {
		t.Fatalf("merged blob table has %d blobs, want %d", len(table), len(packed))
	}
	for _, l := range packed {
		b, ok := table[l.original.Encoded()]
		if !ok {
			t.Fatalf("merged blob table %v lacks gzip layer %s", table, l.original.Encoded())
		}
		toc, err := tocDigest(l.blob)
		if err != nil {
			t.Fatal(err)
		}
		want := blobRecord{ID: l.original.Encoded(), Features: b.Features, CompressedSize: b.CompressedSize,
			MetaDigest: l.digest.Encoded(), MetaSize: uint64(len(l.blob)), TOCDigest: toc, TOCSize: b.TOCSize}
		if b != want || b.Features&blobSeparate == 0 {
			t.Fatalf("merged blob entry\n\t got %+v\n\twant %+v (BlobSeparate set)", b, want)
		}
	}
	bootPath := writeFile(t, t.TempDir(), "image.boot", boot)
	checkMounts(t, bootPath, blobDir(t, files...), expect(t, true, layers...))
}

// unpack runs converter.Unpack over a Nydus layer blob and returns the
// OCI tar it writes.
func unpack(t *testing.T, blob []byte, stream bool) []byte {
	t.Helper()
	bin, _ := binaries(t)
	var out bytes.Buffer
	within(t, fmt.Sprintf("converter.Unpack (stream %v)", stream), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
		defer cancel()
		return converter.Unpack(ctx, readerOf(blob), &out,
			converter.UnpackOption{BuilderPath: bin, WorkDir: t.TempDir(), Timeout: timeout(), Stream: stream})
	})
	return out.Bytes()
}

// TestUnpack: converter.Unpack turns a packed layer back into an OCI tar
// equal to the source layer, from the extracted blob file (--blob) and in
// stream mode, where nydus-image reads the blob from the converter's
// http-proxy server on a unix socket (--backend-type http-proxy).
func TestUnpack(t *testing.T) {
	layers := append([][]entry{richLayer()}, upperLayers()...)
	for i, es := range layers {
		blob := pack(t, layerTar(t, es), converter.PackOption{FsVersion: "6"})
		want := expect(t, false, es) // a layer keeps its whiteout files
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("layer%d/stream=%v", i, stream), func(t *testing.T) {
				out := unpack(t, blob, stream)
				got, err := snapshotTar(bytes.NewReader(out))
				if err != nil {
					t.Fatalf("unpacked tar: %v", err)
				}
				compareTrees(t, "unpacked tar", want, got)
				t.Run("gnu-tar", func(t *testing.T) { // as GNU tar applies it to a directory
					requireRoot(t)
					if _, err := exec.LookPath("tar"); err != nil {
						t.Skip("GNU tar is not installed (apt-get install tar)")
					}
					dst := t.TempDir()
					tarPath := writeFile(t, t.TempDir(), "layer.tar", out)
					run(t, "tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "--same-owner", "-xpf", tarPath, "-C", dst)
					onDisk, err := snapshotDir(dst, readTimeout)
					if err != nil {
						t.Fatal(err)
					}
					compareTrees(t, "unpacked tar extracted by GNU tar", want, onDisk)
				})
			})
		}
	}
}
