package targzref

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"path"
	"sync/atomic"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/zran"
)

var vectors = testutil.TestdataPath("upstream-nydus", "zran")

// countingReaderAt counts the layer bytes reads pull.
type countingReaderAt struct {
	r io.ReaderAt
	n atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}

type built struct {
	gz    []byte
	meta  []byte
	res   *Result
	img   *rafs.Image
	layer *countingReaderAt
	src   *Source
}

func build(t testing.TB, gz []byte, opts ...Option) *built {
	t.Helper()
	var meta bytes.Buffer
	res, err := Build(context.Background(), bytes.NewReader(gz), &meta, opts...)
	if err != nil {
		t.Fatal(err)
	}
	img, err := rafs.Open(bytes.NewReader(res.Bootstrap), int64(len(res.Bootstrap)))
	if err != nil {
		t.Fatalf("bootstrap does not open: %v", err)
	}
	b := &built{gz: gz, meta: meta.Bytes(), res: res, img: img, layer: &countingReaderAt{r: bytes.NewReader(gz)}}
	b.src = &Source{
		Layer: func(e *layout.BlobEntry) (io.ReaderAt, error) { return b.layer, nil },
		Meta: func(e *layout.BlobEntry) (io.ReaderAt, int64, error) {
			return bytes.NewReader(b.meta), int64(len(b.meta)), nil
		},
	}
	return b
}

// checkAllFiles reads every regular file of the tar through the zran path.
func checkAllFiles(t testing.TB, b *built) {
	t.Helper()
	for name, want := range tartest.Files(t, b.gz) {
		nid, err := b.img.LookupPath(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fr, err := b.img.FileReader(context.Background(), b.src, nid)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		if n, err := fr.ReadAt(got, 0); n != len(want) || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("%s: read %d of %d: %v", name, n, len(want), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs through the zran path", name)
		}
	}
}

func checkEntry(t testing.TB, b *built, inline bool) {
	t.Helper()
	e := b.img.Blobs()[0]
	sum := sha256.Sum256(b.gz)
	metaSum := sha256.Sum256(b.meta)
	switch {
	case e.ID() != hex.EncodeToString(sum[:]):
		t.Fatalf("blob id %s is not the layer's sha256", e.ID())
	case e.CompressedSize != uint64(len(b.gz)):
		t.Fatalf("compressed size %d, layer %d", e.CompressedSize, len(b.gz))
	case e.Compressor != layout.CompressGzip || e.Digester != layout.DigestSHA256:
		t.Fatalf("compressor %v digester %v", e.Compressor, e.Digester)
	case e.Features&zranFeatures != zranFeatures:
		t.Fatalf("features %#x", uint32(e.Features))
	case !inline && (e.MetaDigest != metaSum || e.MetaSize != uint64(len(b.meta))):
		t.Fatal("blob_meta_digest/size do not describe the RAFS blob")
	case b.res.MetaID != hex.EncodeToString(metaSum[:]):
		t.Fatal("MetaID is not the RAFS blob's sha256")
	}
}

func TestUpstreamVectors(t *testing.T) {
	for _, name := range []string{"bgzip.tar.gz", "zran-two-streams.tar.gz", "zran-single-stream.tar.gz", "zran-zero-file.tar.gz"} {
		t.Run(name, func(t *testing.T) {
			gz := testutil.ReadTestdata(t, "upstream-nydus", "zran", name)
			for _, tc := range []struct {
				chunkSize uint32
				opts      []Option
				inline    bool
			}{
				{layout.DefaultChunkSize, nil, false},
				{0x1000, []Option{WithChunkSize(0x1000), WithTOC(true)}, false},
				{0x10000, []Option{WithChunkSize(0x10000), WithTOC(true), WithInlineBootstrap(true)}, true},
			} {
				b := build(t, gz, tc.opts...)
				checkEntry(t, b, tc.inline)
				checkAllFiles(t, b)
				t.Logf("chunk size %#x: %s", tc.chunkSize, b.res)
			}
		})
	}
}

func TestZlibSampleIsNotATar(t *testing.T) {
	gz := testutil.ReadTestdata(t, "upstream-nydus", "zran", "zlib_sample.txt.gz")
	if _, err := Build(context.Background(), bytes.NewReader(gz), io.Discard); err == nil {
		t.Fatal("a gzip'd text file built as a tar layer")
	}
}

// TestLargeLayer builds a ~200 MB layer, reads every file through the
// zran path and checks that random reads fetch and inflate only from the
// chunk's context start to the chunk's end.
func TestLargeLayer(t *testing.T) {
	total := 200 << 20
	if testing.Short() {
		total = 24 << 20
	}
	gz := tartest.RandomGz(t, 1, total)
	b := build(t, gz, WithChunkSize(layout.DefaultChunkSize), WithTOC(true))
	checkEntry(t, b, false)
	t.Logf("%s (%d relocated, %d merged contexts)", b.res, b.res.Relocated, b.res.Merged)
	checkAllFiles(t, b)

	m, err := ReadMeta(bytes.NewReader(b.meta), int64(len(b.meta)), b.img.Blobs()[0])
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var maxFetch, maxInflate int
	for range 300 {
		c := b.res.Chunks[rng.IntN(len(b.res.Chunks))]
		_, ctx, zoff, _ := m.context(c.Index)
		before := b.layer.n.Load()
		off, end, err := m.Span(c)
		if err != nil {
			t.Fatal(err)
		}
		raw := make([]byte, end-off)
		b.layer.ReadAt(raw, int64(off))
		data, inflated, err := m.Decode(c, raw)
		if err != nil {
			t.Fatal(err)
		}
		fetched := int(b.layer.n.Load() - before)
		// Reads start at the chunk's own context, the last block boundary
		// at or before it, and stop at the chunk's end.
		if off != ctx.In || fetched > int(ctx.InLen)+zran.ReadSlack || inflated != int(zoff)+len(data) || inflated > int(ctx.OutLen) {
			t.Fatalf("chunk %d: fetched %d (context %d bytes), inflated %d (offset %d + %d)", c.Index, fetched, ctx.InLen, inflated, zoff, len(data))
		}
		// Contexts stay within their limits (the default 8 MiB of output
		// before a new chunk, 2 MiB compressed) unless a block is larger.
		lim := zran.DefaultLimits()
		if inflated > int(lim.MaxUncompressed)+1<<20 || fetched > int(lim.MaxCompressed/2)+int(c.CompressedSize)+64<<10 {
			t.Fatalf("chunk %d: %d bytes fetched, %d inflated for a %d-byte chunk (%d compressed)", c.Index, fetched, inflated, len(data), c.CompressedSize)
		}
		maxFetch, maxInflate = max(maxFetch, fetched), max(maxInflate, inflated)
	}
	t.Logf("random chunk reads: at most %d layer bytes fetched, %d inflated (layer %d bytes)", maxFetch, maxInflate, len(gz))
}

func TestBadLayers(t *testing.T) {
	gz := tartest.RandomGz(t, 2, 3<<20)
	cases := map[string][]byte{
		"truncated":     gz[:len(gz)*2/3],
		"no trailer":    gz[:len(gz)-8],
		"bad crc":       func() []byte { b := bytes.Clone(gz); b[len(b)-7] ^= 1; return b }(),
		"flipped":       func() []byte { b := bytes.Clone(gz); b[len(b)/2] ^= 0x10; return b }(),
		"trailing junk": append(bytes.Clone(gz), 0x1f, 0x8b),
		"plain tar":     tarOf(t, gz),
		"empty":         nil,
	}
	for name, in := range cases {
		if _, err := Build(context.Background(), bytes.NewReader(in), io.Discard); err == nil {
			t.Errorf("%s: built", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func tarOf(t testing.TB, gz []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zr)
	return b
}

// A layer whose bytes differ from the one the image was built from is
// never served: chunks fail their digest (or inflation) with a clear error.
func TestWrongLayer(t *testing.T) {
	gz := tartest.RandomGz(t, 3, 4<<20)
	b := build(t, gz)
	other := tartest.RandomGz(t, 4, 4<<20)
	corrupt := bytes.Clone(gz)
	for i := len(corrupt) / 4; i < len(corrupt); i += 4096 {
		corrupt[i] ^= 0x5a
	}
	for name, layer := range map[string][]byte{"other layer": other, "corrupted layer": corrupt} {
		b.layer = &countingReaderAt{r: bytes.NewReader(layer)}
		served := 0
		for _, c := range b.res.Chunks {
			data, err := b.src.ReadChunk(context.Background(), b.img.Blobs()[0], c)
			if err == nil {
				if sha256.Sum256(data) != c.Digest {
					t.Fatalf("%s: chunk %d served with the wrong digest", name, c.Index)
				}
				served++
				continue
			}
			if !errors.Is(err, ErrDigestMismatch) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("%s: chunk %d: unexpected error %v", name, c.Index, err)
			}
		}
		if served == len(b.res.Chunks) {
			t.Fatalf("%s: every chunk served", name)
		}
		t.Logf("%s: %d of %d chunks intact (verified), the rest refused", name, served, len(b.res.Chunks))
	}
}

// A RAFS blob whose blob.meta does not match the bootstrap is refused.
func TestBadMeta(t *testing.T) {
	gz := testutil.ReadTestdata(t, "upstream-nydus", "zran", "zran-two-streams.tar.gz")
	b := build(t, gz, WithChunkSize(0x1000), WithTOC(true))
	e := *b.img.Blobs()[0]
	for name, mut := range map[string]func(m []byte, e *layout.BlobEntry){
		"header magic":  func(m []byte, e *layout.BlobEntry) { m[e.CIOffset+e.CICompressedSize] ^= 1 },
		"ci bytes":      func(m []byte, e *layout.BlobEntry) { m[e.CIOffset+3] ^= 0xff },
		"entry offset":  func(m []byte, e *layout.BlobEntry) { e.CIOffset++ },
		"entry entries": func(m []byte, e *layout.BlobEntry) { e.ChunkCount++ },
		"truncated":     func(m []byte, e *layout.BlobEntry) { e.CICompressedSize = uint64(len(m)) },
	} {
		m, e := bytes.Clone(b.meta), e
		mut(m, &e)
		if _, err := ReadMeta(bytes.NewReader(m), int64(len(m)), &e); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A layer holding the same file many times keeps one chunk and only the
// contexts its unique chunks use (nydusd refuses more contexts than chunks).
func TestDuplicateFiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	var files []tartest.Entry
	for i := range 20 {
		files = append(files, tartest.File("copy"+hex.EncodeToString([]byte{byte(i)}), "", tartest.Bytes(data)))
	}
	b := build(t, tartest.TarGz(t, files...))
	if len(b.res.Chunks) != 1 || b.res.Contexts > len(b.res.Chunks) {
		t.Fatalf("%d chunks, %d contexts", len(b.res.Chunks), b.res.Contexts)
	}
	checkAllFiles(t, b)
}

// Context limits are validated, and upstream's limits give the same files
// through more contexts than the defaults.
func TestContextLimits(t *testing.T) {
	gz := tartest.RandomGz(t, 4, 16<<20)
	bad := WithContexts(zran.Limits{MinCompressed: 1 << 20, MaxCompressed: 1 << 20, MaxUncompressed: 32 << 20})
	if _, err := Build(context.Background(), bytes.NewReader(gz), io.Discard, bad); err == nil {
		t.Fatal("invalid context limits accepted")
	}
	bu, bd := build(t, gz, WithContexts(zran.UpstreamLimits())), build(t, gz)
	checkAllFiles(t, bu)
	checkAllFiles(t, bd)
	if bd.res.Contexts >= bu.res.Contexts || bd.res.MetaSize >= bu.res.MetaSize {
		t.Fatalf("defaults: %d contexts, %d bytes; upstream limits: %d contexts, %d bytes", bd.res.Contexts, bd.res.MetaSize, bu.res.Contexts, bu.res.MetaSize)
	}
	t.Logf("defaults: %d contexts, RAFS blob %d bytes; upstream limits: %d contexts, %d bytes", bd.res.Contexts, bd.res.MetaSize, bu.res.Contexts, bu.res.MetaSize)
}

// Reading every file in stream order through a Source fetches each
// context about once, while a single small read still fetches only up to
// its chunk.
func TestSourceReadsContextsOnce(t *testing.T) {
	gz := tartest.RandomGz(t, 5, 24<<20)
	b := build(t, gz)
	files := tartest.Files(t, gz)
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want := files[path.Clean("/"+hdr.Name)]
		nid, err := b.img.LookupPath(path.Clean("/" + hdr.Name))
		if err != nil {
			t.Fatal(err)
		}
		fr, err := b.img.FileReader(context.Background(), b.src, nid)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		if n, err := fr.ReadAt(got, 0); n != len(want) || (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(got, want) {
			t.Fatalf("%s: read %d of %d: %v", hdr.Name, n, len(want), err)
		}
	}
	all := b.layer.n.Load()
	if all > 2*int64(len(gz)) {
		t.Fatalf("reading every file fetched %d bytes of a %d-byte layer", all, len(gz))
	}
	t.Logf("reading every file fetched %d bytes of a %d-byte layer", all, len(gz))
}
