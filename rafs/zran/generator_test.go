package zran

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

type genChunk struct {
	ref  *ChunkRef
	data []byte
}

// generate runs a tar parser over a Generator the way rafs/source does
// (behind a 1 MiB bufio.Reader), cutting files into chunkSize chunks.
func generate(t testing.TB, gz []byte, chunkSize int64) ([]Context, []genChunk, *Generator, error) {
	t.Helper()
	g := NewGenerator(bytes.NewReader(gz))
	ctxs, chunks, err := generateWith(t, g, chunkSize)
	return ctxs, chunks, g, err
}

func generateWith(t testing.TB, g *Generator, chunkSize int64) ([]Context, []genChunk, error) {
	t.Helper()
	tr := tar.NewReader(bufio.NewReaderSize(g, 1<<20))
	var chunks []genChunk
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		for off := int64(0); off < hdr.Size; off += chunkSize {
			n := min(chunkSize, hdr.Size-off)
			if err := g.BeginChunk(n); err != nil {
				return nil, nil, err
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(tr, buf); err != nil {
				return nil, nil, err
			}
			ref, err := g.EndChunk(buf)
			if err != nil {
				return nil, nil, err
			}
			chunks = append(chunks, genChunk{ref, buf})
		}
	}
	ctxs, err := g.Finish()
	return ctxs, chunks, err
}

// checkChunks reads every chunk back from its context, fetching only the
// compressed bytes from the context start to the chunk's end.
func checkChunks(t *testing.T, gz []byte, ctxs []Context, chunks []genChunk) {
	t.Helper()
	tab := EncodeContexts(ctxs)
	dec, err := DecodeContexts(tab, len(ctxs))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range chunks {
		ctx := dec[c.ref.Context]
		end := c.ref.In + uint64(c.ref.InLen)
		if end > ctx.InEnd() || c.ref.In < ctx.In || uint64(c.ref.Offset)+uint64(c.ref.Size) > uint64(ctx.OutLen) {
			t.Fatalf("chunk %d (%+v) outside context %+v", i, *c.ref, ctx)
		}
		out := make([]byte, c.ref.Offset+c.ref.Size)
		if _, err := ctx.Inflate(gz[ctx.In:end], out); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if !bytes.Equal(out[c.ref.Offset:], c.data) {
			t.Fatalf("chunk %d differs when inflated from context %d", i, c.ref.Context)
		}
	}
}

func TestGeneratorUpstreamVectors(t *testing.T) {
	for _, name := range []string{"bgzip.tar.gz", "zran-two-streams.tar.gz", "zran-single-stream.tar.gz", "zran-zero-file.tar.gz"} {
		t.Run(name, func(t *testing.T) {
			gz := testutil.ReadTestdata(t, "upstream-nydus", "zran", name)
			for _, cs := range []int64{4096, 1 << 20} {
				ctxs, chunks, g, err := generate(t, gz, cs)
				if err != nil {
					t.Fatal(err)
				}
				if g.Digest() != sha256.Sum256(gz) || g.Size() != int64(len(gz)) {
					t.Fatal("stream digest or size wrong")
				}
				checkChunks(t, gz, ctxs, chunks)
				rel, mer := g.Repairs()
				t.Logf("chunk size %d: %d chunks, %d contexts (%d relocated, %d merged)", cs, len(chunks), len(ctxs), rel, mer)
			}
		})
	}
}

// randomTarGz builds a deterministic tar of files with mixed content,
// gzip'd at level (several members when members > 1).
func randomTarGz(t testing.TB, seed uint64, total int, level, members int) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	for i := 0; plain.Len() < total; i++ {
		size := rng.IntN(3 << 20)
		if rng.IntN(3) == 0 {
			size = rng.IntN(5000)
		}
		data := make([]byte, size)
		for j := 0; j < size; {
			run := min(size-j, 1+rng.IntN(8192))
			switch rng.IntN(3) {
			case 0:
				for k := range run {
					data[j+k] = byte(rng.UintN(256))
				}
			case 1:
				copy(data[j:j+run], bytes.Repeat([]byte("zran context "), run/13+1))
			}
			j += run
		}
		tw.WriteHeader(&tar.Header{Name: "f" + string(rune('a'+i%26)) + "/" + string(rune('a'+i/26%26)), Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg})
		tw.Write(data)
	}
	tw.Close()
	var gz bytes.Buffer
	raw := plain.Bytes()
	per := len(raw)/members + 1
	for m := 0; m < members; m++ {
		zw, _ := gzip.NewWriterLevel(&gz, level)
		zw.Write(raw[min(m*per, len(raw)):min((m+1)*per, len(raw))])
		zw.Close()
	}
	return gz.Bytes()
}

func TestGeneratorGeneratedLayers(t *testing.T) {
	for _, tc := range []struct{ level, members int }{{gzip.DefaultCompression, 1}, {gzip.BestSpeed, 3}, {gzip.BestCompression, 1}, {gzip.HuffmanOnly, 2}, {gzip.NoCompression, 1}} {
		gz := randomTarGz(t, uint64(tc.level+10*tc.members), 12<<20, tc.level, tc.members)
		ctxs, chunks, g, err := generate(t, gz, 1<<20)
		if err != nil {
			t.Fatalf("level %d: %v", tc.level, err)
		}
		checkChunks(t, gz, ctxs, chunks)
		rel, mer := g.Repairs()
		t.Logf("level %d, %d members: %d chunks, %d contexts (%d relocated, %d merged)", tc.level, tc.members, len(chunks), len(ctxs), rel, mer)
	}
}

func TestGeneratorBadStreams(t *testing.T) {
	gz := randomTarGz(t, 1, 3<<20, gzip.DefaultCompression, 1)
	cases := map[string][]byte{
		"truncated":     gz[:len(gz)/2],
		"no trailer":    gz[:len(gz)-8],
		"bad crc":       func() []byte { b := bytes.Clone(gz); b[len(b)-6] ^= 1; return b }(),
		"flipped":       func() []byte { b := bytes.Clone(gz); b[len(b)/3] ^= 0x40; return b }(),
		"trailing junk": append(bytes.Clone(gz), 1, 2, 3),
		"not gzip":      []byte("plain text"),
		"empty":         nil,
	}
	for name, in := range cases {
		if _, _, _, err := generate(t, in, 1<<20); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A consumer that reads ahead of the generator cannot get chunks mapped to
// the wrong bytes: EndChunk checks the data against the stream.
func TestGeneratorPositionCheck(t *testing.T) {
	gz := randomTarGz(t, 2, 2<<20, gzip.DefaultCompression, 1)
	g := NewGenerator(bytes.NewReader(gz))
	tr := tar.NewReader(g)
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 100)
	io.ReadFull(tr, head) // consumed outside a chunk
	if err := g.BeginChunk(100); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	io.ReadFull(tr, buf)
	if _, err := g.EndChunk(head); !errors.Is(err, ErrPosition) {
		t.Fatalf("misplaced chunk: %v", err)
	}
}

func FuzzDecodeContexts(f *testing.F) {
	f.Add(EncodeContexts([]Context{{In: 10, Out: 0, InLen: 100, OutLen: 300}, {In: 50, Out: 200, InLen: 30, OutLen: 100, Bits: 3, Byte: 0xa5, Dict: []byte("dictionary")}}), 2, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte, count int, in []byte) {
		ctxs, err := DecodeContexts(b, count%64)
		if err != nil {
			return
		}
		again, err := DecodeContexts(EncodeContexts(ctxs), len(ctxs))
		if err != nil {
			t.Fatalf("re-encoded contexts do not decode: %v", err)
		}
		for i := range again {
			a, b := again[i], ctxs[i]
			if a.In != b.In || a.Out != b.Out || a.InLen != b.InLen || a.OutLen != b.OutLen || a.Bits != b.Bits || a.Byte != b.Byte || !bytes.Equal(a.Dict, b.Dict) {
				t.Fatalf("context %d changed in a round trip", i)
			}
		}
		for _, c := range ctxs {
			out := make([]byte, min(c.OutLen, 1<<16))
			c.Inflate(in, out) // must not panic
		}
	})
}

// Contexts opened at a wrong block start are repaired when they close:
// moved back to the true start when it is near, merged into the previous
// context otherwise; every chunk still inflates to its data.
func TestGeneratorRepairsContexts(t *testing.T) {
	gz := randomTarGz(t, 21, 12<<20, gzip.BestSpeed, 1)
	for _, tc := range []struct {
		name  string
		shift uint64
	}{{"relocated", 3}, {"merged", 4096}} {
		n := 0
		g := NewGenerator(bytes.NewReader(gz))
		g.newContext = func(c *Context) {
			if n++; n > 1 && c.Out > 0 {
				c.In += tc.shift // as if the inflater had reported it late
				c.Bits = 0
			}
		}
		ctxs, chunks, err := generateWith(t, g, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		checkChunks(t, gz, ctxs, chunks)
		rel, mer := g.Repairs()
		t.Logf("%s: %d contexts, %d relocated, %d merged", tc.name, len(ctxs), rel, mer)
		if (tc.name == "relocated" && rel == 0) || (tc.name == "merged" && mer == 0) {
			t.Fatalf("%s: no context was %s", tc.name, tc.name)
		}
	}
}
