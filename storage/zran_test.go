package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/targzref"
	"github.com/gonydus/nydus/rafs/zran"
	"github.com/gonydus/nydus/storage"
)

type zranImage struct {
	gz, meta []byte
	res      *targzref.Result
	img      *rafs.Image
	blobs    map[string][]byte
}

func buildZran(t testing.TB, gz []byte, opts ...targzref.Option) *zranImage {
	t.Helper()
	var meta bytes.Buffer
	res, err := targzref.Build(context.Background(), bytes.NewReader(gz), &meta, opts...)
	if err != nil {
		t.Fatal(err)
	}
	img, err := rafs.Open(bytes.NewReader(res.Bootstrap), int64(len(res.Bootstrap)))
	if err != nil {
		t.Fatal(err)
	}
	return &zranImage{gz: gz, meta: meta.Bytes(), res: res, img: img,
		blobs: map[string][]byte{res.Entry.ID(): gz, res.MetaID: meta.Bytes()}}
}

// open serves the layer and the RAFS blob by id, as a registry would.
func (z *zranImage) open(ctx context.Context, id string) (storage.BlobReader, error) {
	b, ok := z.blobs[id]
	if !ok {
		return nil, os.ErrNotExist
	}
	return storage.ReaderAt(bytes.NewReader(b)), nil
}

// readAll reads every file through src and compares it with the tar.
func zranReadAll(t testing.TB, z *zranImage, src rafs.ChunkSource) {
	t.Helper()
	for name, want := range tartest.Files(t, z.gz) {
		nid, err := z.img.LookupPath(name)
		if err != nil {
			t.Fatal(err)
		}
		fr, err := z.img.FileReader(context.Background(), src, nid)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		if n, err := fr.ReadAt(got, 0); n != len(want) || (err != nil && !errors.Is(err, io.EOF)) {
			t.Fatalf("%s: %d of %d: %v", name, n, len(want), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs through storage", name)
		}
	}
}

func TestZranVectorsThroughCache(t *testing.T) {
	for _, name := range []string{"bgzip.tar.gz", "zran-two-streams.tar.gz", "zran-single-stream.tar.gz", "zran-zero-file.tar.gz"} {
		t.Run(name, func(t *testing.T) {
			gz := testutil.ReadTestdata(t, "upstream-nydus", "zran", name)
			z := buildZran(t, gz, targzref.WithChunkSize(0x10000), targzref.WithTOC(true))
			tables, err := storage.ChunkTables(z.img)
			if err != nil {
				t.Fatal(err)
			}
			var fetched [2]uint64
			for i, opts := range [][]storage.SourceOption{
				{storage.WithCacheDir(t.TempDir()), storage.WithBlobOptions(storage.WithValidate(true))},
				// With the chunk table, chunks sharing a context are
				// inflated and cached together.
				{storage.WithCacheDir(t.TempDir()), storage.WithChunkTables(tables)},
			} {
				src, err := storage.NewSource(z.open, opts...)
				if err != nil {
					t.Fatal(err)
				}
				zranReadAll(t, z, src)
				b, err := src.Blob(context.Background(), z.img.Blobs()[0])
				if err != nil {
					t.Fatal(err)
				}
				first := b.Stats()
				zranReadAll(t, z, src) // from the cache now
				if again := b.Stats(); again != first {
					t.Fatalf("second pass went to the backend: %+v then %+v", first, again)
				}
				fetched[i] = first.BackendBytes
				t.Logf("chunk table %v: %d backend reads, %d bytes for a %d-byte layer; %d bytes inflated", i == 1, first.BackendReads, first.BackendBytes, len(gz), b.ZranInflated())
				src.Close()
			}
			if fetched[1] > fetched[0] {
				t.Fatalf("reading contexts together fetched more: %d > %d", fetched[1], fetched[0])
			}
		})
	}
}

// Each uncached read of a chunk fetches the layer from its context start
// to the chunk's end and inflates exactly the context prefix plus the
// chunk, never more.
func TestZranReadBounds(t *testing.T) {
	total := 200 << 20
	if testing.Short() {
		total = 24 << 20
	}
	gz := tartest.RandomGz(t, 5, total)
	z := buildZran(t, gz, targzref.WithChunkSize(layout.DefaultChunkSize))
	src, err := storage.NewSource(z.open)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	zranReadAll(t, z, src)
	entry := z.img.Blobs()[0]
	b, err := src.Blob(context.Background(), entry)
	if err != nil {
		t.Fatal(err)
	}
	m, err := targzref.ReadMeta(bytes.NewReader(z.meta), int64(len(z.meta)), entry)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(8, 9))
	var maxInflated, maxFetched uint64
	for range 200 {
		c := z.res.Chunks[rng.IntN(len(z.res.Chunks))]
		ctx, zoff, err := m.Locate(c.Index)
		if err != nil {
			t.Fatal(err)
		}
		_, end, _ := m.Span(c)
		st, inf := b.Stats(), b.ZranInflated()
		data, err := b.ReadChunk(context.Background(), c, nil)
		if err != nil || len(data) != int(c.UncompressedSize) {
			t.Fatalf("chunk %d: %v", c.Index, err)
		}
		fetched := b.Stats().BackendBytes - st.BackendBytes
		inflated := b.ZranInflated() - inf
		if fetched != end-ctx.In || inflated != uint64(zoff)+uint64(c.UncompressedSize) {
			t.Fatalf("chunk %d: fetched %d (want %d from the context start), inflated %d (want %d+%d)", c.Index, fetched, end-ctx.In, inflated, zoff, c.UncompressedSize)
		}
		// The default context limits: under 8 MiB of output before a new
		// chunk (plus a block), about 2 MiB compressed.
		if lim := zran.DefaultLimits(); inflated > uint64(lim.MaxUncompressed)+1<<20 || fetched > uint64(lim.MaxCompressed/2)+uint64(c.CompressedSize)+64<<10 {
			t.Fatalf("chunk %d: %d bytes fetched, %d inflated", c.Index, fetched, inflated)
		}
		maxInflated, maxFetched = max(maxInflated, inflated), max(maxFetched, fetched)
	}
	t.Logf("%s; random chunk reads fetched at most %d bytes and inflated at most %d", z.res, maxFetched, maxInflated)
}

// A layer that does not match the image (corrupt or another layer) is
// never served and nothing of it is cached.
func TestZranCorruptLayer(t *testing.T) {
	gz := tartest.RandomGz(t, 6, 6<<20)
	z := buildZran(t, gz)
	bad := bytes.Clone(gz)
	for i := 100; i < len(bad); i += 2000 {
		bad[i] ^= 0x21
	}
	z.blobs[z.res.Entry.ID()] = bad
	dir := t.TempDir()
	src, err := storage.NewSource(z.open, storage.WithCacheDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	entry := z.img.Blobs()[0]
	for _, c := range z.res.Chunks {
		if _, err := src.ReadChunk(context.Background(), entry, c); !errors.Is(err, storage.ErrDigestMismatch) {
			t.Fatalf("chunk %d of a corrupt layer: %v", c.Index, err)
		}
	}
	src.Close()
	// With the right layer, everything reads (nothing bad was cached).
	z.blobs[z.res.Entry.ID()] = gz
	src, err = storage.NewSource(z.open, storage.WithCacheDir(dir), storage.WithBlobOptions(storage.WithValidate(true)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	zranReadAll(t, z, src)
	// A missing RAFS blob is a clear error.
	delete(z.blobs, z.res.MetaID)
	src2, _ := storage.NewSource(z.open)
	if _, err := src2.ReadChunk(context.Background(), entry, z.res.Chunks[0]); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing RAFS blob: %v", err)
	}
}

// The gzip layer and its RAFS blob in one registry repository, as zran
// images are published: files read lazily through the registry backend
// with range requests, the blob.meta fetched from the RAFS blob.
func TestZranOverRegistry(t *testing.T) {
	gz := tartest.RandomGz(t, 7, 8<<20)
	z := buildZran(t, gz, targzref.WithChunkSize(0x40000), targzref.WithTOC(true))
	dir := t.TempDir()
	for id, data := range z.blobs {
		p := filepath.Join(dir, id)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reg := newTestRegistry(t)
	reg.push(t, filepath.Join(dir, z.res.Entry.ID()))
	reg.push(t, filepath.Join(dir, z.res.MetaID))
	tables, err := storage.ChunkTables(z.img)
	if err != nil {
		t.Fatal(err)
	}
	src, err := storage.NewSource(storage.BackendOpen(reg.backend(t)), storage.WithCacheDir(t.TempDir()), storage.WithChunkTables(tables))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	zranReadAll(t, z, src)
	m := src.Metrics().Snapshot()
	t.Logf("%d range reads, %d bytes of a %d-byte layer", m.BackendReads, m.BackendBytes, len(gz))
	if m.BackendReads == 0 {
		t.Fatal("no backend reads")
	}
}

// Whole-blob prefetch of a zran blob reads contexts, caches every chunk,
// and reads are then served without the backend.
func TestZranPrefetch(t *testing.T) {
	gz := tartest.RandomGz(t, 10, 10<<20)
	z := buildZran(t, gz, targzref.WithChunkSize(0x40000))
	tables, err := storage.ChunkTables(z.img)
	if err != nil {
		t.Fatal(err)
	}
	src, err := storage.NewSource(z.open, storage.WithCacheDir(t.TempDir()), storage.WithChunkTables(tables))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	entry := z.img.Blobs()[0]
	b, err := src.Blob(context.Background(), entry)
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Prefetch(context.Background(), b.Table(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if res.Chunks != len(z.res.Chunks) {
		t.Fatalf("prefetched %d of %d chunks", res.Chunks, len(z.res.Chunks))
	}
	// Reads stay near the span size and contexts are not fetched twice.
	if res.Requests < len(gz)/(2<<20) || res.Bytes > uint64(len(gz))*11/10 {
		t.Fatalf("prefetch: %d requests, %d bytes for a %d-byte layer", res.Requests, res.Bytes, len(gz))
	}
	before := b.Stats()
	zranReadAll(t, z, src)
	if after := b.Stats(); after != before {
		t.Fatalf("reads after prefetch went to the backend: %+v -> %+v", before, after)
	}
	t.Logf("prefetch: %d requests, %d bytes for a %d-byte layer; %d inflated", res.Requests, res.Bytes, len(gz), b.ZranInflated())
}

// Upstream records chunk compressed sizes as zlib's consumption while the
// chunk streamed past, which can be 0; such chunks read from their context.
func TestZranZeroCompressedSize(t *testing.T) {
	gz := tartest.RandomGz(t, 11, 2<<20)
	z := buildZran(t, gz)
	src, err := storage.NewSource(z.open)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	entry := z.img.Blobs()[0]
	c := *z.res.Chunks[0]
	c.CompressedSize = 0
	if _, err := src.ReadChunk(context.Background(), entry, &c); err != nil {
		t.Fatalf("chunk with no compressed bytes of its own: %v", err)
	}
}
