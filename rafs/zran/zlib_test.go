package zran

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/rafs/internal/zlibdriver"
)

// TestZlibMadeContexts reads with our inflater contexts made the way
// upstream nydus-image makes them with zlib (block boundaries from
// Z_BLOCK inflation, pending bits from data_type, dictionaries from
// inflateGetDictionary, in_len exactly what zlib consumed), through a
// python3 ctypes driver: images built by upstream read correctly.
func TestZlibMadeContexts(t *testing.T) {
	layers := map[string][]byte{"generated": randomTarGz(t, 31, 12<<20, gzip.DefaultCompression, 1)}
	if gz, err := os.ReadFile(filepath.Join(vectors, "bgzip.tar.gz")); err == nil {
		layers["bgzip"] = gz
	}
	for name, gz := range layers {
		dir := t.TempDir()
		in, js := filepath.Join(dir, "layer.gz"), filepath.Join(dir, "cases.json")
		if err := os.WriteFile(in, gz, 0o644); err != nil {
			t.Fatal(err)
		}
		zlibdriver.Run(t, "testdata/zlibcontexts.py", in, js)
		var res struct {
			Cases []struct {
				In, Out          uint64
				Bits, Byte       uint8
				Dict             []byte
				InLen, Skip, Len int
			}
			Boundaries int
		}
		b, _ := os.ReadFile(js)
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		plain := oracle(t, gz)
		bits, maxExtra := 0, 0
		for i, c := range res.Cases {
			ctx := Context{In: c.In, Out: c.Out, InLen: uint32(c.InLen), OutLen: uint32(c.Skip + c.Len), Bits: c.Bits, Byte: c.Byte, Dict: c.Dict}
			got := make([]byte, c.Len)
			// klauspost's inflater looks a few bytes further ahead than
			// zlib: readers give it ReadSlack bytes past in_len.
			extra := 0
			for ; ; extra++ {
				_, err := ctx.InflateAt(gz[c.In:min(c.In+uint64(c.InLen)+uint64(extra), uint64(len(gz)))], c.Skip, got)
				if err == nil {
					break
				}
				if extra >= ReadSlack {
					t.Fatalf("%s case %d (in %d bits %d, in_len %d): %v", name, i, c.In, c.Bits, c.InLen, err)
				}
			}
			maxExtra = max(maxExtra, extra)
			off := int(c.Out) + c.Skip
			if !bytes.Equal(got, plain[off:off+c.Len]) {
				t.Fatalf("%s case %d: output differs", name, i)
			}
			if c.Bits > 0 {
				bits++
			}
		}
		if len(res.Cases) == 0 {
			t.Fatalf("%s: no cases", name)
		}
		t.Logf("%s: %d zlib block boundaries, %d contexts read (%d mid-byte) with zlib's in_len plus at most %d bytes", name, res.Boundaries, len(res.Cases), bits, maxExtra)
	}
}
