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

func checkRandomAccess(t *testing.T, gz []byte, span int64) *Index {
	t.Helper()
	want := oracle(t, gz)
	var streamed bytes.Buffer
	ix, err := BuildIndex(bytes.NewReader(gz), span, &streamed)
	if err != nil {
		t.Fatal(err)
	}
	dropped, err := ix.Verify(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if dropped > 0 {
		t.Logf("Verify dropped %d checkpoints that do not resume exactly", dropped)
	}
	if ix.Size != int64(len(want)) || !bytes.Equal(streamed.Bytes(), want) || ix.CompressedSize != int64(len(gz)) {
		t.Fatalf("index size %d / %d, streamed %d bytes equal=%v", ix.Size, len(want), streamed.Len(), bytes.Equal(streamed.Bytes(), want))
	}
	ra := bytes.NewReader(gz)
	rng := rand.New(rand.NewPCG(uint64(len(gz)), 3))
	for range 200 {
		if len(want) == 0 {
			break
		}
		off := rng.Int64N(int64(len(want)))
		n := 1 + rng.Int64N(min(300_000, int64(len(want))-off))
		buf := make([]byte, n)
		k, err := ix.ReadAt(ra, buf, off)
		if err != nil || int64(k) != n || !bytes.Equal(buf, want[off:off+n]) {
			t.Fatalf("ReadAt(%d, %d): %d %v", off, n, k, err)
		}
	}
	// Every checkpoint resumes exactly.
	for i, cp := range ix.Checkpoints {
		n := min(int64(4096), ix.Size-cp.Out)
		if n <= 0 {
			continue
		}
		buf := make([]byte, n)
		if k, err := ix.ReadAt(ra, buf, cp.Out); (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(buf[:k], want[cp.Out:cp.Out+int64(k)]) {
			t.Fatalf("checkpoint %d (in %d bits %d out %d): %v", i, cp.In, cp.Bits, cp.Out, err)
		}
	}
	// Past the end.
	buf := make([]byte, 10)
	if k, err := ix.ReadAt(ra, buf, ix.Size-3); ix.Size >= 3 && (k != 3 || !errors.Is(err, io.EOF)) {
		t.Fatalf("tail read: %d %v", k, err)
	}
	return ix
}

func TestUpstreamGzipVectors(t *testing.T) {
	for _, name := range []string{"bgzip.tar.gz", "zran-two-streams.tar.gz", "zran-single-stream.tar.gz", "zran-zero-file.tar.gz", "zlib_sample.txt.gz"} {
		t.Run(name, func(t *testing.T) {
			gz, err := os.ReadFile(filepath.Join(vectors, name))
			if err != nil {
				testutil.Missing(t, "upstream test vector (%v): put the shared testdata at ../shared/testdata beside the repository or set GONYDUS_TESTDATA", err)
			}
			ix := checkRandomAccess(t, gz, minSpan)
			bits := 0
			for _, cp := range ix.Checkpoints {
				if cp.Bits > 0 {
					bits++
				}
			}
			t.Logf("%s: %d bytes -> %d, %d members, %d checkpoints (%d mid-byte)", name, len(gz), ix.Size, len(ix.members), len(ix.Checkpoints), bits)
		})
	}
}

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
		// A second member, as bgzip and concatenated layers have.
		zw2 := gzip.NewWriter(&gz)
		zw2.Write(plain.Bytes()[:100_000])
		zw2.Close()
		ix := checkRandomAccess(t, gz.Bytes(), 256<<10)
		if len(ix.Checkpoints) < 10 || len(ix.members) != 2 {
			t.Fatalf("level %d: %d checkpoints, %d members", level, len(ix.Checkpoints), len(ix.members))
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
		if _, err := BuildIndex(bytes.NewReader(in), 0, nil); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v is not ErrFormat", name, err)
		}
	}
}

func FuzzBuildIndex(f *testing.F) {
	for _, name := range []string{"zran-two-streams.tar.gz", "zran-zero-file.tar.gz", "zlib_sample.txt.gz"} {
		if b, err := os.ReadFile(filepath.Join(vectors, name)); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, gz []byte) {
		// Cap the input, not the decoded size: 64 KiB of gzip may expand
		// to about 64 MiB, which is compared window by window.
		if len(gz) > 64<<10 {
			return
		}
		ix, err := BuildIndex(bytes.NewReader(gz), minSpan, nil)
		if err != nil {
			return
		}
		if _, err := ix.Verify(bytes.NewReader(gz)); err != nil {
			t.Fatalf("a stream that indexed does not verify: %v", err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 1<<20)
		got := make([]byte, 1<<20)
		for off := int64(0); off < int64(ix.Size); off += int64(len(want)) {
			n := min(int64(len(want)), int64(ix.Size)-off)
			if _, err := io.ReadFull(zr, want[:n]); err != nil {
				t.Fatalf("gzip ends before the index's %d bytes: %v", ix.Size, err)
			}
			if _, err := ix.ReadAt(bytes.NewReader(gz), got[:n], off); err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:n], want[:n]) {
				t.Fatalf("random-access read at %d differs from gzip", off)
			}
		}
	})
}
