package storage_test

import (
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/cache"
)

func openCache(t testing.TB, dir string, tb *testBlob, opts ...cache.Option) *cache.BlobFile {
	t.Helper()
	cf, err := cache.Open(dir, tb.entry, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

func TestReadEveryChunkNoCache(t *testing.T) {
	for _, comp := range []layout.Compressor{layout.CompressNone, layout.CompressLZ4, layout.CompressZstd} {
		t.Run(comp.String(), func(t *testing.T) {
			tb := buildBlob(t, t.TempDir(), 64<<10, comp, 300<<10, 5, 1<<20, 70<<10)
			r := openCounting(t, tb.path)
			b := newBlob(t, tb, r, storage.WithAmplify(0))
			var want int64
			for _, c := range tb.chunks {
				got, err := b.ReadChunk(ctxT(t), c, nil)
				if err != nil {
					t.Fatal(err)
				}
				checkChunk(t, tb, c, got)
				want += int64(c.CompressedSize)
			}
			if n := r.requests.Load(); n != int64(len(tb.chunks)) {
				t.Fatalf("%d backend requests for %d chunks", n, len(tb.chunks))
			}
			if n := r.bytes.Load(); n != want {
				t.Fatalf("fetched %d bytes, chunks hold %d", n, want)
			}
		})
	}
}

func TestReadChunksMergesNeighbours(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 2<<20)
	r := openCounting(t, tb.path)
	b := newBlob(t, tb, r, storage.WithAmplify(0), storage.WithMaxSpan(64<<20))
	// Chunks 2..9 are back to back: one request.
	got, err := b.ReadChunks(ctxT(t), tb.chunks[2:10])
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range tb.chunks[2:10] {
		checkChunk(t, tb, c, got[i])
	}
	if n := r.requests.Load(); n != 1 {
		t.Fatalf("8 neighbouring chunks took %d backend requests", n)
	}
	// Chunks 12 and 20 are apart: two requests.
	r.reset()
	if _, err := b.ReadChunks(ctxT(t), []*layout.ChunkInfo{tb.chunks[20], tb.chunks[12]}); err != nil {
		t.Fatal(err)
	}
	if n := r.requests.Load(); n != 2 {
		t.Fatalf("2 distant chunks took %d backend requests", n)
	}
}

func TestMaxSpanSplitsReads(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressNone, 1<<20) // 16 raw chunks of 64 KiB
	r := openCounting(t, tb.path)
	b := newBlob(t, tb, r, storage.WithAmplify(0), storage.WithMaxSpan(256<<10))
	if _, err := b.ReadChunks(ctxT(t), tb.chunks); err != nil {
		t.Fatal(err)
	}
	if n := r.requests.Load(); n != 4 {
		t.Fatalf("1 MiB in 256 KiB spans took %d requests, want 4", n)
	}
}

func TestAmplifyPrefetchesFollowingChunks(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressNone, 2<<20) // 32 raw chunks
	r := openCounting(t, tb.path)
	cf := openCache(t, t.TempDir(), tb)
	b := newBlob(t, tb, r, storage.WithCache(cf), storage.WithChunkTable(tb.chunks), storage.WithAmplify(512<<10))
	got, err := b.ReadChunk(ctxT(t), tb.chunks[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	checkChunk(t, tb, tb.chunks[0], got)
	if n, by := r.requests.Load(), r.bytes.Load(); n != 1 || by != 512<<10 {
		t.Fatalf("amplified read: %d requests, %d bytes; want 1 request of 512 KiB", n, by)
	}
	// Chunks 1..7 came with it.
	for _, c := range tb.chunks[1:8] {
		got, err := b.ReadChunk(ctxT(t), c, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkChunk(t, tb, c, got)
	}
	if n := r.requests.Load(); n != 1 {
		t.Fatalf("reads of amplified chunks went to the backend: %d requests", n)
	}
	// Chunk 8 was not.
	if _, err := b.ReadChunk(ctxT(t), tb.chunks[8], nil); err != nil {
		t.Fatal(err)
	}
	if n := r.requests.Load(); n != 2 {
		t.Fatalf("%d requests after reading chunk 8, want 2", n)
	}
}

func TestCorruptBlobIsNeverReturnedOrCached(t *testing.T) {
	for _, comp := range []layout.Compressor{layout.CompressNone, layout.CompressZstd} {
		t.Run(comp.String(), func(t *testing.T) {
			tb := buildBlob(t, t.TempDir(), 64<<10, comp, 512<<10)
			victim := tb.chunks[3]
			flipByte(t, tb.path, int64(victim.CompressedOffset+uint64(victim.CompressedSize)/2))
			r := openCounting(t, tb.path)
			cf := openCache(t, t.TempDir(), tb)
			b := newBlob(t, tb, r, storage.WithCache(cf), storage.WithChunkTable(tb.chunks))
			_, err := b.ReadChunk(ctxT(t), victim, nil)
			if !errors.Is(err, storage.ErrDigestMismatch) {
				t.Fatalf("corrupt chunk: err %v, want ErrDigestMismatch", err)
			}
			if cf.Ready(victim) {
				t.Fatal("corrupt chunk marked ready")
			}
			// Its neighbours (amplified in the same read) are fine and cached.
			if !cf.Ready(tb.chunks[2]) && !cf.Ready(tb.chunks[4]) {
				t.Log("neighbours not cached (amplify off?)")
			}
			// A second read fetches again and fails again.
			before := r.requests.Load()
			if _, err := b.ReadChunk(ctxT(t), victim, nil); !errors.Is(err, storage.ErrDigestMismatch) {
				t.Fatalf("second read: %v", err)
			}
			if r.requests.Load() == before {
				t.Fatal("second read of a corrupt chunk did not go to the backend")
			}
			if err := cf.Flush(); err != nil {
				t.Fatal(err)
			}
			if cf.Ready(victim) {
				t.Fatal("corrupt chunk marked ready after flush")
			}
		})
	}
}

func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

func TestSingleFlight(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 256<<10, layout.CompressZstd, 1<<20)
	r := openCounting(t, tb.path)
	// Without a cache, a reader that arrives after the fetch ended fetches
	// again: the fetch lasts long enough that every reader, however loaded
	// the machine, joins it (20ms was not, on 2 busy cores).
	r.latency = 500 * time.Millisecond
	b := newBlob(t, tb, r)
	c := tb.chunks[1]
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			got, err := b.ReadChunk(ctxT(t), c, make([]byte, 0, c.UncompressedSize))
			if err == nil && string(got) != string(tb.want[c.Index]) {
				err = errors.New("wrong bytes")
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := r.requests.Load(); n != 1 {
		t.Fatalf("64 concurrent readers of one chunk caused %d backend fetches", n)
	}
}
