package compress

import (
	"bytes"
	"crypto/rand"
	"errors"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/gonydus/nydus/rafs/layout"
)

func TestRoundTrip(t *testing.T) {
	random := make([]byte, 100_000)
	_, _ = rand.Read(random)
	inputs := map[string][]byte{
		"empty-ish": {0},
		"text":      bytes.Repeat([]byte("nydus chunk "), 10_000),
		"random":    random,
		"zeros":     make([]byte, 1<<20),
	}
	for _, alg := range []layout.Compressor{layout.CompressNone, layout.CompressLZ4, layout.CompressZstd, layout.CompressGzip} {
		c, err := New(alg)
		if err != nil {
			t.Fatal(err)
		}
		for name, in := range inputs {
			comp, err := c.Compress(nil, in)
			if err != nil {
				t.Fatalf("%v/%s: %v", alg, name, err)
			}
			out, err := c.Decompress(nil, comp, len(in))
			if err != nil {
				t.Fatalf("%v/%s: %v", alg, name, err)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("%v/%s: round trip differs", alg, name)
			}
			if alg != layout.CompressNone && name == "zeros" && len(comp) >= len(in)/10 {
				t.Fatalf("%v did not compress zeros: %d bytes", alg, len(comp))
			}
			// Wrong expected size is an error, never silent truncation.
			if _, err := c.Decompress(nil, comp, len(in)+1); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v/%s: wrong size accepted: %v", alg, name, err)
			}
		}
	}
}

func FuzzDecompress(f *testing.F) {
	z, _ := New(layout.CompressZstd)
	l, _ := New(layout.CompressLZ4)
	seed := bytes.Repeat([]byte("abc"), 100)
	zc, _ := z.Compress(nil, seed)
	lc, _ := l.Compress(nil, seed)
	f.Add(zc, 300)
	f.Add(lc, 300)
	f.Fuzz(func(t *testing.T, data []byte, size int) {
		// Any claimed size up to 64 MiB (every chunk size and more): the
		// codecs must refuse sizes the input cannot expand to before
		// allocating them.
		if size < 0 {
			size = -(size + 1)
		}
		size %= 64 << 20
		for _, c := range []Codec{z, l} {
			out, err := c.Decompress(nil, data, size)
			if err == nil && len(out) != size {
				t.Fatalf("%v returned %d bytes without error, want %d", c.Algorithm(), len(out), size)
			}
		}
	})
}

// TestHostileSizeAllocatesNothing: a size that the compressed bytes cannot
// expand to is refused before the output buffer is allocated, and a zstd
// frame that expands past its size fails instead of growing the output.
func TestHostileSizeAllocatesNothing(t *testing.T) {
	for _, alg := range []layout.Compressor{layout.CompressLZ4, layout.CompressZstd, layout.CompressGzip} {
		c, err := New(alg)
		if err != nil {
			t.Fatal(err)
		}
		src, err := c.Compress(nil, bytes.Repeat([]byte("x"), 4096))
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = c.Decompress(nil, src, 1<<30)
		runtime.ReadMemStats(&after)
		if err == nil || !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %d bytes claimed to expand to 1 GiB: %v", alg, len(src), err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
			t.Errorf("%s: refusing a 1 GiB size for %d bytes allocated %d bytes", alg, len(src), grew)
		}
	}
	// A zstd frame without a content size that holds more than it should.
	z, _ := zstd.NewWriter(nil, zstd.WithSingleSegment(false))
	var frame bytes.Buffer
	z.Reset(&frame)
	z.Write(bytes.Repeat([]byte("y"), 1<<20))
	z.Close()
	c, _ := New(layout.CompressZstd)
	out, err := c.Decompress(make([]byte, 0, 8<<20), frame.Bytes(), 4096)
	if err == nil {
		t.Fatalf("a 1 MiB zstd frame decoded as a 4096-byte chunk: %d bytes", len(out))
	}
}
