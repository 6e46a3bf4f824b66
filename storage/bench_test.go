package storage_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/testregistry"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/backend"
	"github.com/gonydus/nydus/storage/cache"
)

// Benchmark knobs (environment):
//
//	NYDUS_BENCH_SIZE  uncompressed data in the benchmark blob (default 1G; e.g. 256M)
//	NYDUS_BENCH_BW    backend bandwidth cap in bytes/s (default 400M)
//	NYDUS_BENCH_RTT   backend latency per request (default 2ms)
func benchEnv(name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "G"):
		mult, v = 1<<30, strings.TrimSuffix(v, "G")
	case strings.HasSuffix(v, "M"):
		mult, v = 1<<20, strings.TrimSuffix(v, "M")
	case strings.HasSuffix(v, "K"):
		mult, v = 1<<10, strings.TrimSuffix(v, "K")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		panic(fmt.Sprintf("%s=%q: %v", name, os.Getenv(name), err))
	}
	return n * mult
}

// benchBlob is a large blob of many files of mixed sizes and content.
type benchBlob struct {
	entry *layout.BlobEntry
	files [][]*layout.ChunkInfo // chunks of each file, in blob order
	all   []*layout.ChunkInfo   // every chunk, by index
	path  string
	size  int64 // uncompressed file bytes
}

// contentReader streams n bytes alternating text runs and random runs.
type contentReader struct {
	rng  *rand.Rand
	left int64
	run  int64
	text bool
	pos  int
}

const benchText = "GET /index.html HTTP/1.1 200 OK Content-Type: text/html; charset=utf-8 <div class=\"x\">lorem ipsum</div>\n"

func (r *contentReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.left)]
	for i := range p {
		if r.run == 0 {
			r.run, r.text = 1+r.rng.Int64N(256<<10), r.rng.IntN(3) != 0
		}
		if r.text {
			p[i] = benchText[r.pos%len(benchText)]
			r.pos++
		} else {
			p[i] = byte(r.rng.Uint64())
		}
		r.run--
	}
	r.left -= int64(len(p))
	return len(p), nil
}

func buildBenchBlob(b *testing.B, dir string, total int64) *benchBlob {
	b.Helper()
	start := time.Now()
	f, err := os.Create(filepath.Join(dir, "blob"))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 4<<20)
	bw, err := builder.NewBlobWriter(w, builder.WithWorkers(2))
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, 42))
	bb := &benchBlob{}
	for bb.size < total {
		// log-uniform file sizes from 1 KiB to 8 MiB
		n := int64(1024) << rng.IntN(14)
		n += rng.Int64N(n)
		n = min(n, total-bb.size)
		cs, err := bw.WriteFile(&contentReader{rng: rng, left: n}, n)
		if err != nil {
			b.Fatal(err)
		}
		bb.files = append(bb.files, cs)
		bb.size += n
	}
	res, err := bw.Finish(nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	bb.entry, bb.all, bb.path = &res.Entry, res.Chunks, f.Name()
	b.Logf("built %d MiB in %d files, %d chunks, %d MiB compressed in %v", bb.size>>20, len(bb.files), len(bb.all), res.Entry.CompressedSize>>20, time.Since(start).Round(time.Millisecond))
	return bb
}

// link models a network link: every request waits rtt, and the bytes of
// all requests share a bandwidth of bw bytes per second.
type link struct {
	rtt time.Duration
	bw  float64

	mu   sync.Mutex
	next time.Time
}

func newLink() *link {
	return &link{rtt: time.Duration(benchEnv("NYDUS_BENCH_RTT", int64(2*time.Millisecond))), bw: float64(benchEnv("NYDUS_BENCH_BW", 400<<20))}
}

// wait blocks until a transfer of n bytes would have completed.
func (l *link) wait(ctx context.Context, n int) error {
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	l.next = l.next.Add(time.Duration(float64(n) / l.bw * float64(time.Second)))
	done := l.next.Add(l.rtt)
	l.mu.Unlock()
	t := time.NewTimer(time.Until(done))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// linkReader reads a local file as if over a link.
type linkReader struct {
	f    *os.File
	link *link
}

func (l *linkReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := l.link.wait(ctx, len(p)); err != nil {
		return 0, err
	}
	return l.f.ReadAt(p, off)
}

// linkedRegistry serves an in-process OCI registry whose blob responses
// go over a link.
func linkedRegistry(b *testing.B, blobPath, id string) backend.Backend {
	b.Helper()
	reg := testregistry.Start(b)
	data, err := os.ReadFile(blobPath)
	if err != nil {
		b.Fatal(err)
	}
	if got := reg.Push(b, "bench/blobs", data); got != id {
		b.Fatalf("pushed blob %s, want %s", got, id)
	}
	inner := reg.Handler()
	ln := newLink()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
			n := 0
			if s, e, ok := parseRange(r.Header.Get("Range")); ok {
				n = int(e - s + 1)
			}
			if err := ln.wait(r.Context(), n); err != nil {
				return
			}
		}
		inner.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	cfg := fmt.Sprintf(`{"scheme":"http","host":%q,"repo":"bench/blobs","timeout":30}`, strings.TrimPrefix(srv.URL, "http://"))
	be, err := backend.New("registry", json.RawMessage(cfg))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { be.Close() })
	return be
}

// parseRange parses "bytes=s-e".
func parseRange(h string) (s, e int64, ok bool) {
	a, z, found := strings.Cut(strings.TrimPrefix(h, "bytes="), "-")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseInt(a, 10, 64)
	e, err2 := strconv.ParseInt(z, 10, 64)
	return s, e, err1 == nil && err2 == nil && e >= s
}

// coldRun reads every chunk of bb through a fresh cache, either as files
// (ReadChunks per file, 4 readers: merged and parallel) or one chunk at a
// time without amplification, and returns the time taken.
func coldRun(b *testing.B, bb *benchBlob, work string, r storage.BlobReader, merged bool) time.Duration {
	ctx := context.Background()
	os.RemoveAll(work)
	cf, err := cache.Open(work, bb.entry)
	if err != nil {
		b.Fatal(err)
	}
	opts := []storage.Option{storage.WithCache(cf), storage.WithChunkTable(bb.all)}
	if !merged {
		opts = append(opts, storage.WithAmplify(0))
	}
	blob, err := storage.NewBlob(bb.entry, r, opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer blob.Close()
	start := time.Now()
	if !merged {
		for _, c := range bb.all {
			if _, err := blob.ReadChunk(ctx, c, nil); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	files := make(chan []*layout.ChunkInfo)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for cs := range files {
				if len(cs) == 0 {
					continue
				}
				if _, err := blob.ReadChunks(ctx, cs); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for _, cs := range bb.files {
		files <- cs
	}
	close(files)
	wg.Wait()
	return time.Since(start)
}

// reportCold reports merged vs single times and their ratio.
func reportCold(b *testing.B, what string, bb *benchBlob, merged, single time.Duration) {
	n := float64(b.N)
	b.ReportMetric(merged.Seconds()/n, "merged-s/op")
	b.ReportMetric(single.Seconds()/n, "single-s/op")
	b.ReportMetric(single.Seconds()/merged.Seconds(), "speedup")
	fmt.Printf("cold read of %d MiB %s: merged+parallel %.2fs, one chunk at a time %.2fs, speedup %.2fx\n",
		bb.size>>20, what, merged.Seconds()/n, single.Seconds()/n, single.Seconds()/merged.Seconds())
}

// BenchmarkReadChain reports, for a blob of NYDUS_BENCH_SIZE bytes:
// cold: reading every chunk over a slow link with merged, parallel reads
// versus one chunk at a time (speedup); warm: reading every chunk from the
// cache versus preading the same bytes from a plain file (ratio, target
// ≥ 0.7).
func BenchmarkReadChain(b *testing.B) {
	dir := b.TempDir()
	bb := buildBenchBlob(b, dir, benchEnv("NYDUS_BENCH_SIZE", 1<<30))
	f, err := os.Open(bb.path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	work := filepath.Join(dir, "cache")
	openChain := func(b *testing.B, r storage.BlobReader, opts ...storage.Option) *storage.Blob {
		cf, err := cache.Open(work, bb.entry)
		if err != nil {
			b.Fatal(err)
		}
		blob, err := storage.NewBlob(bb.entry, r, append([]storage.Option{storage.WithCache(cf), storage.WithChunkTable(bb.all)}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		return blob
	}
	ctx := context.Background()

	b.Run("cold", func(b *testing.B) {
		b.SetBytes(bb.size)
		var merged, single time.Duration
		for b.Loop() {
			merged += coldRun(b, bb, work, &linkReader{f: f, link: newLink()}, true)
			single += coldRun(b, bb, work, &linkReader{f: f, link: newLink()}, false)
		}
		reportCold(b, "from a file over the link", bb, merged, single)
	})

	b.Run("cold-registry", func(b *testing.B) {
		be := linkedRegistry(b, bb.path, bb.entry.ID())
		open := func(ctx context.Context) storage.BlobReader {
			r, err := be.Open(ctx, bb.entry.ID())
			if err != nil {
				b.Fatal(err)
			}
			return r
		}
		b.SetBytes(bb.size)
		var merged, single time.Duration
		for b.Loop() {
			merged += coldRun(b, bb, work, open(context.Background()), true)
			single += coldRun(b, bb, work, open(context.Background()), false)
		}
		reportCold(b, "from a registry over the link", bb, merged, single)
	})

	b.Run("warm", func(b *testing.B) {
		// Fill the cache once (from the local file, no link delay).
		os.RemoveAll(work)
		blob := openChain(b, storage.ReaderAt(f))
		if _, err := blob.Prefetch(ctx, bb.all, 4<<20); err != nil {
			b.Fatal(err)
		}
		blob.Close()
		plain, err := os.Open(filepath.Join(work, bb.entry.ID()+cache.DataSuffix))
		if err != nil {
			b.Fatal(err)
		}
		defer plain.Close()
		blob = openChain(b, storage.ReaderAt(f))
		defer blob.Close()
		vblob, err := storage.NewBlob(bb.entry, storage.ReaderAt(f), storage.WithCache(mustOpenCache(b, work, bb.entry)), storage.WithValidate(true))
		if err != nil {
			b.Fatal(err)
		}
		defer vblob.Close()
		buf := make([]byte, layout.MaxChunkSize)
		b.SetBytes(bb.size)
		var chain, file, validated time.Duration
		for b.Loop() {
			t0 := time.Now()
			for _, c := range bb.all {
				if _, err := blob.ReadChunk(ctx, c, buf); err != nil {
					b.Fatal(err)
				}
			}
			chain += time.Since(t0)
			t0 = time.Now()
			for _, c := range bb.all {
				if _, err := plain.ReadAt(buf[:c.UncompressedSize], int64(c.UncompressedOffset)); err != nil {
					b.Fatal(err)
				}
			}
			file += time.Since(t0)
			t0 = time.Now()
			for _, c := range bb.all {
				if _, err := vblob.ReadChunk(ctx, c, buf); err != nil {
					b.Fatal(err)
				}
			}
			validated += time.Since(t0)
		}
		mbps := func(d time.Duration) float64 { return float64(bb.size) * float64(b.N) / d.Seconds() / (1 << 20) }
		b.ReportMetric(mbps(chain), "chain-MiB/s")
		b.ReportMetric(mbps(file), "file-MiB/s")
		b.ReportMetric(file.Seconds()/chain.Seconds(), "ratio")
		b.ReportMetric(file.Seconds()/validated.Seconds(), "validated-ratio")
		fmt.Printf("warm read: chain %.0f MiB/s, plain file %.0f MiB/s, ratio %.2f (target >= 0.7); with validate %.2f\n",
			mbps(chain), mbps(file), file.Seconds()/chain.Seconds(), file.Seconds()/validated.Seconds())
	})
}

func mustOpenCache(b *testing.B, dir string, e *layout.BlobEntry) *cache.BlobFile {
	cf, err := cache.Open(dir, e)
	if err != nil {
		b.Fatal(err)
	}
	return cf
}
