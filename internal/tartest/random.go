package tartest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// RandomGz returns a deterministic gzip'd tar (one gzip member, default
// level) of about total bytes of file data, the same for the same seed:
// regular files of many sizes (mostly under 16 KiB, some up to 1 MiB, a
// few up to 12 MiB), each a mix of random bytes and runs of text, in 17
// directories. Layers like it exercise zran contexts and chunking.
func RandomGz(tb testing.TB, seed uint64, total int) []byte {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 11))
	words := []string{"nydus ", "zran ", "chunk ", "layer ", "gzip ", "inflate ", "context ", "window ", "\n", "func ", "return ", "{}\n"}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.DefaultCompression)
	if err != nil {
		tb.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	written := 0
	for i := 0; written < total; i++ {
		var size int
		switch rng.IntN(10) {
		case 0:
			size = rng.IntN(12 << 20)
		case 1, 2, 3:
			size = rng.IntN(1 << 20)
		default:
			size = rng.IntN(16 << 10)
		}
		data := make([]byte, 0, size)
		for len(data) < size {
			switch rng.IntN(4) {
			case 0:
				n := min(size-len(data), 1+rng.IntN(4096))
				for range n {
					data = append(data, byte(rng.UintN(256)))
				}
			default:
				for k := rng.IntN(200); k > 0 && len(data) < size; k-- {
					data = append(data, words[rng.IntN(len(words))]...)
				}
			}
		}
		data = data[:size]
		dir := "d" + string(rune('a'+i%17))
		h := &tar.Header{Name: dir + "/f" + hex.EncodeToString([]byte{byte(i >> 8), byte(i)}), Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg, ModTime: MTime}
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			tb.Fatal(err)
		}
		written += size
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return gz.Bytes()
}
