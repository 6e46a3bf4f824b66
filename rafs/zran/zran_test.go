package zran

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

var vectors = testutil.TestdataPath("upstream-nydus", "zran")

// oracle decompresses a (multi-member) gzip stream with the standard library.
func oracle(t testing.TB, gz []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// generateRaw runs any gzip stream (not only a tar) through a Generator,
// cutting its uncompressed bytes, whose length is size, into chunkSize
// chunks back to back, as a builder cuts a file.
func generateRaw(t testing.TB, gz []byte, size, chunkSize int64) ([]Context, []genChunk, *Generator, error) {
	t.Helper()
	g := NewGenerator(bytes.NewReader(gz))
	var chunks []genChunk
	for off := int64(0); off < size; off += chunkSize {
		n := min(chunkSize, size-off)
		if err := g.BeginChunk(n); err != nil {
			g.Close()
			return nil, nil, g, err
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(g, buf); err != nil {
			g.Close()
			return nil, nil, g, err
		}
		ref, err := g.EndChunk(buf)
		if err != nil {
			g.Close()
			return nil, nil, g, err
		}
		chunks = append(chunks, genChunk{ref, buf})
	}
	ctxs, err := g.Finish()
	return ctxs, chunks, g, err
}

// checkRaw generates contexts for gz cut into chunkSize chunks and checks
// that the chunks are the stream's bytes and inflate from their contexts.
func checkRaw(t *testing.T, gz []byte, chunkSize int64) ([]Context, *Generator) {
	t.Helper()
	want := oracle(t, gz)
	ctxs, chunks, g, err := generateRaw(t, gz, int64(len(want)), chunkSize)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, c := range chunks {
		got = append(got, c.data...)
	}
	if !bytes.Equal(got, want) || g.UncompressedSize() != int64(len(want)) || g.Size() != int64(len(gz)) {
		t.Fatalf("generator streamed %d bytes (equal %v), sizes %d/%d, want %d/%d", len(got), bytes.Equal(got, want), g.UncompressedSize(), g.Size(), len(want), len(gz))
	}
	checkChunks(t, gz, ctxs, chunks)
	return ctxs, g
}

// TestUpstreamGzipVectors runs upstream's gzip vectors, tars and a plain
// text file alike, through the generator as a byte stream.
func TestUpstreamGzipVectors(t *testing.T) {
	for _, name := range []string{"bgzip.tar.gz", "zran-two-streams.tar.gz", "zran-single-stream.tar.gz", "zran-zero-file.tar.gz", "zlib_sample.txt.gz"} {
		t.Run(name, func(t *testing.T) {
			gz := testutil.ReadTestdata(t, "upstream-nydus", "zran", name)
			ctxs, g := checkRaw(t, gz, 64<<10)
			bits := 0
			for _, c := range ctxs {
				if c.Bits > 0 {
					bits++
				}
			}
			rel, mer := g.Repairs()
			t.Logf("%s: %d bytes -> %d, %d contexts (%d mid-byte, %d relocated, %d merged)", name, len(gz), g.UncompressedSize(), len(ctxs), bits, rel, mer)
		})
	}
}

// TestGeneratedStreams covers what tars do not bring: member headers with
// a name and a comment, and data that is no tar, at every level.
func TestGeneratedStreams(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var plain bytes.Buffer
	for plain.Len() < 6<<20 {
		if rng.IntN(4) == 0 {
			b := make([]byte, 4096)
			for i := range b {
				b[i] = byte(rng.UintN(256))
			}
			plain.Write(b)
		} else {
			plain.WriteString("the quick brown fox jumps over the lazy dog; nydus zran checkpoints\n")
		}
	}
	for _, level := range []int{gzip.BestSpeed, gzip.DefaultCompression, gzip.BestCompression, gzip.HuffmanOnly} {
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, level)
		zw.Name = "with-a-name.tar"
		zw.Comment = "and a comment"
		zw.Write(plain.Bytes())
		zw.Close()
		// A second member, as bgzip and concatenated layers have: the
		// chunk that crosses into it inflates across the member boundary.
		zw2 := gzip.NewWriter(&gz)
		zw2.Write(plain.Bytes()[:100_000])
		zw2.Close()
		ctxs, _ := checkRaw(t, gz.Bytes(), 256<<10)
		// 6 MiB of output at most 2 MiB a context (upstream's limits).
		if len(ctxs) < 4 {
			t.Fatalf("level %d: %d contexts", level, len(ctxs))
		}
	}
}

func TestCorruptStreams(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(bytes.Repeat([]byte("abc"), 100_000))
	zw.Close()
	good := gz.Bytes()
	cases := map[string][]byte{
		"empty":      nil,
		"not gzip":   []byte("plain text, not gzip at all"),
		"truncated":  good[:len(good)/2],
		"no trailer": good[:len(good)-8],
		"bad crc": func() []byte {
			b := bytes.Clone(good)
			b[len(b)-6] ^= 1
			return b
		}(),
		"flipped data": func() []byte {
			b := bytes.Clone(good)
			b[len(b)/2] ^= 0x55
			return b
		}(),
		"trailing junk": append(bytes.Clone(good), 0x1f, 0x8b, 0),
	}
	for name, in := range cases {
		// No chunks: Finish reads the whole stream, as a build does past
		// the tar's last file.
		if _, _, _, err := generateRaw(t, in, 0, 1); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v is not ErrFormat", name, err)
		}
	}
}

func FuzzGenerator(f *testing.F) {
	for _, name := range []string{"zran-two-streams.tar.gz", "zran-zero-file.tar.gz", "zlib_sample.txt.gz"} {
		if b, err := os.ReadFile(filepath.Join(vectors, name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, gz []byte) {
		// Cap the input, not the decoded size: 64 KiB of gzip may expand
		// to about 64 MiB, which is compared chunk by chunk.
		if len(gz) > 64<<10 {
			return
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return
		}
		want, err := io.ReadAll(zr)
		if err != nil {
			return
		}
		ctxs, chunks, _, err := generateRaw(t, gz, int64(len(want)), 64<<10)
		if err != nil {
			return
		}
		for i, c := range chunks {
			if off := int64(i) << 16; !bytes.Equal(c.data, want[off:off+int64(len(c.data))]) {
				t.Fatalf("chunk %d differs from gzip", i)
			}
		}
		checkChunks(t, gz, ctxs, chunks)
	})
}
