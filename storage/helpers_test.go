package storage_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
)

// testBlob is a real data blob built with rafs/builder and written to a file.
type testBlob struct {
	entry  *layout.BlobEntry
	chunks []*layout.ChunkInfo // by chunk-info index
	want   map[uint32][]byte   // uncompressed bytes by chunk index
	path   string
}

// fileData returns n bytes alternating compressible text and random data.
func fileData(rng *rand.Rand, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		k := min(n-len(out), 1+rng.IntN(96<<10))
		if rng.IntN(2) == 0 {
			line := []byte("the quick brown fox jumps over the lazy dog 0123456789\n")
			for i := 0; i < k; i++ {
				out = append(out, line[i%len(line)])
			}
		} else {
			b := make([]byte, k)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			out = append(out, b...)
		}
	}
	return out
}

// buildBlob writes files of the given sizes into a blob of chunkSize chunks.
func buildBlob(t testing.TB, dir string, chunkSize uint32, comp layout.Compressor, sizes ...int) *testBlob {
	t.Helper()
	var buf bytes.Buffer
	bw, err := builder.NewBlobWriter(&buf, builder.WithChunkSize(chunkSize), builder.WithCompressor(comp))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(len(sizes)), uint64(chunkSize)))
	type file struct {
		data   []byte
		chunks []*layout.ChunkInfo
	}
	var files []file
	for _, n := range sizes {
		data := fileData(rng, n)
		cs, err := bw.WriteFile(bytes.NewReader(data), int64(n))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, file{data, cs})
	}
	res, err := bw.Finish(nil)
	if err != nil {
		t.Fatal(err)
	}
	tb := &testBlob{entry: &res.Entry, chunks: res.Chunks, want: map[uint32][]byte{}}
	for _, f := range files {
		for _, c := range f.chunks {
			tb.want[c.Index] = f.data[c.FileOffset : c.FileOffset+uint64(c.UncompressedSize)]
		}
	}
	if len(tb.want) != len(tb.chunks) {
		t.Fatalf("built %d chunks, know data of %d", len(tb.chunks), len(tb.want))
	}
	tb.path = filepath.Join(dir, res.ID())
	if err := os.WriteFile(tb.path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return tb
}

// countingReader is a file-backed BlobReader that counts requests and
// bytes and can inject latency.
type countingReader struct {
	f        *os.File
	latency  time.Duration
	requests atomic.Int64
	bytes    atomic.Int64

	mu     sync.Mutex
	ranges [][2]int64
}

func openCounting(t testing.TB, path string) *countingReader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &countingReader{f: f}
}

func (r *countingReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	r.requests.Add(1)
	r.bytes.Add(int64(len(p)))
	r.mu.Lock()
	r.ranges = append(r.ranges, [2]int64{off, int64(len(p))})
	r.mu.Unlock()
	if r.latency > 0 {
		select {
		case <-time.After(r.latency):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return r.f.ReadAt(p, off)
}

func (r *countingReader) reset() {
	r.requests.Store(0)
	r.bytes.Store(0)
	r.mu.Lock()
	r.ranges = nil
	r.mu.Unlock()
}

func newBlob(t testing.TB, tb *testBlob, r storage.BlobReader, opts ...storage.Option) *storage.Blob {
	t.Helper()
	b, err := storage.NewBlob(tb.entry, r, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func checkChunk(t testing.TB, tb *testBlob, c *layout.ChunkInfo, got []byte) {
	t.Helper()
	if !bytes.Equal(got, tb.want[c.Index]) {
		t.Fatalf("chunk %d: got %d bytes that differ from the %d source bytes", c.Index, len(got), len(tb.want[c.Index]))
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
