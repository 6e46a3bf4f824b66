package targzref

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/rafs/internal/zlibdriver"
)

// TestContextsInflateWithZlib decodes the contexts we write with the real
// zlib, the way upstream nydusd does (raw inflate, inflatePrime with the
// context's pending bits, inflateSetDictionary, trailer and header skipped
// at member ends), through a small Python ctypes driver, and checks every
// chunk's digest. It needs python3 and libz.so.1.
func TestContextsInflateWithZlib(t *testing.T) {
	dir := t.TempDir()
	layers := map[string][]byte{}
	for _, name := range []string{"bgzip.tar.gz", "zran-two-streams.tar.gz", "zran-zero-file.tar.gz"} {
		if gz, err := os.ReadFile(filepath.Join(vectors, name)); err == nil {
			layers[name] = gz
		}
	}
	layers["generated"] = tartest.RandomGz(t, 12, 30<<20)
	// Several members, so contexts cross member ends.
	raw := tarOf(t, tartest.RandomGz(t, 13, 12<<20))
	var multi bytes.Buffer
	for i := 0; i < len(raw); i += 3 << 20 {
		zw, _ := gzip.NewWriterLevel(&multi, gzip.BestSpeed)
		zw.Write(raw[i:min(i+3<<20, len(raw))])
		zw.Close()
	}
	layers["multi-member"] = multi.Bytes()
	var names []string
	for name, gz := range layers {
		b := build(t, gz, WithChunkSize(0x10000))
		m, err := ReadMeta(bytes.NewReader(b.meta), int64(len(b.meta)), b.img.Blobs()[0])
		if err != nil {
			t.Fatal(err)
		}
		type ctxJ struct {
			In, Out       uint64
			InLen, OutLen uint32
			Byte, Bits    uint8
			Dict          []byte
		}
		type chJ struct {
			Ctx, Off, Size uint32
			Digest         []byte
		}
		var cs []ctxJ
		for _, c := range m.Contexts {
			cs = append(cs, ctxJ{c.In, c.Out, c.InLen, c.OutLen, c.Byte, c.Bits, c.Dict})
		}
		var ch []chJ
		for i, c := range m.Chunks {
			ch = append(ch, chJ{uint32(c.Data >> 32), uint32(c.Data), c.UncompressedSize, b.res.Chunks[i].Digest[:]})
		}
		j, _ := json.Marshal(map[string]any{"ctxs": cs, "chunks": ch})
		if err := os.WriteFile(filepath.Join(dir, name+".json"), j, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".gz"), gz, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	out := zlibdriver.Run(t, "testdata/zlibcheck.py", append([]string{dir}, names...)...)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		t.Log(line)
		if !strings.HasSuffix(line, "mismatches: 0") {
			t.Fatalf("zlib disagrees: %s", line)
		}
	}
}
