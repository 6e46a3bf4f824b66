package prefetch_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/cache"
	"github.com/gonydus/nydus/storage/prefetch"
)

// countingFile is a blob file backend that counts requests.
type countingFile struct {
	f        *os.File
	requests atomic.Int64
	bytes    atomic.Int64
}

func (c *countingFile) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.requests.Add(1)
	c.bytes.Add(int64(len(p)))
	return c.f.ReadAt(p, off)
}

type fixture struct {
	blob   *storage.Blob
	chunks []*layout.ChunkInfo
	data   []byte // the single file's bytes
	r      *countingFile
	cache  *cache.BlobFile
}

// newFixture builds a one-file blob of size bytes (random, so chunks do not
// dedup) and a cached storage.Blob over it.
func newFixture(t *testing.T, chunkSize uint32, size int, opts ...storage.Option) *fixture {
	t.Helper()
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	for i := range data {
		data[i] = byte(rng.Uint32() % 7) // compressible but not constant
	}
	var buf bytes.Buffer
	bw, err := builder.NewBlobWriter(&buf, builder.WithChunkSize(chunkSize))
	if err != nil {
		t.Fatal(err)
	}
	fileChunks, err := bw.WriteFile(bytes.NewReader(data), int64(size))
	if err != nil {
		t.Fatal(err)
	}
	res, err := bw.Finish(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), res.ID())
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cf, err := cache.Open(t.TempDir(), &res.Entry)
	if err != nil {
		t.Fatal(err)
	}
	r := &countingFile{f: f}
	opts = append([]storage.Option{storage.WithCache(cf), storage.WithChunkTable(res.Chunks)}, opts...)
	b, err := storage.NewBlob(&res.Entry, r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return &fixture{blob: b, chunks: fileChunks, data: data, r: r, cache: cf}
}

func (f *fixture) want(c *layout.ChunkInfo) []byte {
	return f.data[c.FileOffset : c.FileOffset+uint64(c.UncompressedSize)]
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWholeBlobPrefetch(t *testing.T) {
	fx := newFixture(t, 64<<10, 4<<20) // 64 chunks
	p, err := prefetch.New(prefetch.WithThreads(3), prefetch.WithBatchSize(512<<10))
	if err != nil {
		t.Fatal(err)
	}
	run := p.Start(ctxT(t), []prefetch.Job{{Blob: fx.blob}})
	if err := run.Wait(); err != nil {
		t.Fatal(err)
	}
	pr := run.Progress()
	var total uint64
	for _, c := range fx.blob.Table() {
		total += uint64(c.CompressedSize)
	}
	if pr.Chunks != 64 || pr.Bytes != total || pr.Outstanding != 0 {
		t.Fatalf("progress %+v, want 64 chunks / %d bytes", pr, total)
	}
	// Batches of ≤512 KiB compressed, one backend read each.
	if minReq := int64((total + 512<<10 - 1) / (512 << 10)); pr.Requests < minReq || fx.r.requests.Load() != pr.Requests {
		t.Fatalf("%d requests (backend saw %d) for %d bytes in 512 KiB batches", pr.Requests, fx.r.requests.Load(), total)
	}
	m := fx.blob.Metrics().Snapshot()
	if m.PrefetchDataAmount != total || m.PrefetchUnmergedChunks != 64 || m.PrefetchRequestsCount != uint64(pr.Requests) || m.PrefetchBeginTimeSecs == 0 || m.PrefetchEndTimeSecs == 0 {
		t.Fatalf("metrics %+v", m)
	}
	// Everything is served from the cache now.
	fx.r.requests.Store(0)
	for _, c := range fx.chunks {
		got, err := fx.blob.ReadChunk(ctxT(t), c, nil)
		if err != nil || !bytes.Equal(got, fx.want(c)) {
			t.Fatalf("chunk %d: %v", c.Index, err)
		}
	}
	if n := fx.r.requests.Load(); n != 0 {
		t.Fatalf("%d backend requests after whole-blob prefetch", n)
	}
}

func TestChunkListPrefetchBatches(t *testing.T) {
	fx := newFixture(t, 4<<10, 10<<20) // 2560 chunks of 4 KiB
	p, err := prefetch.New(prefetch.WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	list := fx.chunks[:2500]
	run := p.Start(ctxT(t), []prefetch.Job{{Blob: fx.blob, Chunks: list}})
	if err := run.Wait(); err != nil {
		t.Fatal(err)
	}
	if pr := run.Progress(); pr.Batches != 3 || pr.Chunks != 2500 {
		t.Fatalf("2500 listed chunks: %+v, want 3 batches (1024-chunk flush)", pr)
	}
	for _, c := range fx.chunks {
		if want := c.Index < 2500; fx.cache.Ready(c) != want {
			t.Fatalf("chunk %d ready=%v, listed=%v", c.Index, !want, want)
		}
	}
	// A second run finds everything cached and fetches nothing.
	before := fx.r.requests.Load()
	if err := p.Prefetch(ctxT(t), []prefetch.Job{{Blob: fx.blob, Chunks: list}}); err != nil {
		t.Fatal(err)
	}
	if fx.r.requests.Load() != before {
		t.Fatal("prefetch of cached chunks went to the backend")
	}
}

// TestUserReadOvertakesThrottledPrefetch starts a whole-blob prefetch
// limited to 256 KiB/s (about 16 s for this blob) and checks that a user
// read of the last chunk completes while the prefetch is far from done.
func TestUserReadOvertakesThrottledPrefetch(t *testing.T) {
	fx := newFixture(t, 64<<10, 4<<20, storage.WithAmplify(0))
	p, err := prefetch.New(prefetch.WithThreads(2), prefetch.WithBatchSize(128<<10), prefetch.WithBandwidthLimit(256<<10))
	if err != nil {
		t.Fatal(err)
	}
	run := p.Start(ctxT(t), []prefetch.Job{{Blob: fx.blob}})
	defer run.Cancel()
	for run.Progress().Done < 1 {
		time.Sleep(time.Millisecond)
	}
	last := fx.chunks[len(fx.chunks)-1]
	if fx.cache.Ready(last) {
		t.Fatal("last chunk prefetched already; throttle not working")
	}
	got, err := fx.blob.ReadChunk(ctxT(t), last, nil)
	if err != nil || !bytes.Equal(got, fx.want(last)) {
		t.Fatalf("user read: %v", err)
	}
	pr := run.Progress()
	if pr.Outstanding < pr.Batches/2 {
		t.Fatalf("user read finished only after most of the prefetch: %+v", pr)
	}
	run.Cancel()
	if err := run.Wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v", err)
	}
	// The cancelled prefetch left only verified chunks behind.
	fx.cache.Flush()
	for _, c := range fx.chunks {
		if data, ok, err := fx.cache.Get(c, nil); err != nil {
			t.Fatal(err)
		} else if ok && !bytes.Equal(data, fx.want(c)) {
			t.Fatalf("chunk %d cached with wrong bytes", c.Index)
		}
	}
}

func TestPrefetchNeedsChunkTable(t *testing.T) {
	fx := newFixture(t, 64<<10, 256<<10)
	b, err := storage.NewBlob(fx.blob.Entry(), fx.r) // no table, no cache
	if err != nil {
		t.Fatal(err)
	}
	p, _ := prefetch.New()
	if err := p.Prefetch(ctxT(t), []prefetch.Job{{Blob: b}}); err == nil {
		t.Fatal("whole-blob prefetch without a chunk table succeeded")
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]prefetch.Option{
		"threads 0":        prefetch.WithThreads(0),
		"threads 1025":     prefetch.WithThreads(prefetch.MaxThreads + 1),
		"batch size 0":     prefetch.WithBatchSize(0),
		"batch size > max": prefetch.WithBatchSize(storage.MaxAmplify + 1),
		"nil logger":       prefetch.WithLogger(nil),
		"nil metrics":      prefetch.WithMetrics(nil),
		"backoff 0":        prefetch.WithBackoff(0),
	} {
		if _, err := prefetch.New(o); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if _, err := prefetch.New(prefetch.WithThreads(prefetch.MaxThreads), prefetch.WithBatchSize(storage.MaxAmplify), prefetch.WithBandwidthLimit(0)); err != nil {
		t.Errorf("the largest settings refused: %v", err)
	}
}
