package zran

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// goTreeTarGz returns a gzip'd tar of up to limit bytes of the Go tree.
func goTreeTarGz(tb testing.TB, limit int64) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	var total int64
	root := runtime.GOROOT()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || total >= limit || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, _ := tar.FileInfoHeader(info, "")
		hdr.Name, _ = filepath.Rel(root, p)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(tw, f)
		total += n
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// TestLayerRoundTrip runs a ~200 MB layer of the Go tree through the
// generator as a build does (1 MiB chunks, the default limits) and inflates
// every context, checking every chunk's bytes and that a chunk needs no
// more compressed bytes from its context start than the limits allow.
func TestLayerRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 200 MB layer")
	}
	gz := goTreeTarGz(t, 200<<20)
	g := NewGenerator(bytes.NewReader(gz))
	if err := g.SetLimits(DefaultLimits()); err != nil {
		t.Fatal(err)
	}
	g.SetChunkSize(1 << 20)
	ctxs, chunks, err := generateWith(t, g, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	// Inflate each context once (its chunks are checked against that
	// output; checkChunks, which inflates from the context start for each
	// chunk, would take minutes over 10,000 files).
	outs := make([][]byte, len(ctxs))
	for i, c := range ctxs {
		outs[i] = make([]byte, c.OutLen)
		if _, err := c.Inflate(gz[c.In:min(c.InEnd()+ReadSlack, uint64(len(gz)))], outs[i]); err != nil {
			t.Fatalf("context %d: %v", i, err)
		}
	}
	for i, c := range chunks {
		out := outs[c.ref.Context]
		if !bytes.Equal(out[c.ref.Offset:c.ref.Offset+c.ref.Size], c.data) {
			t.Fatalf("chunk %d differs when inflated from context %d", i, c.ref.Context)
		}
	}
	maxIn := uint64(0)
	for i, c := range chunks {
		in := c.ref.In + uint64(c.ref.InLen) - ctxs[c.ref.Context].In
		if l := DefaultLimits(); in > uint64(l.MaxCompressed/2)+uint64(c.ref.InLen)+inflateBufSize {
			t.Fatalf("chunk %d: %d compressed bytes from its context start, more than the limits allow", i, in)
		}
		maxIn = max(maxIn, in)
	}
	table := len(EncodeContexts(ctxs))
	t.Logf("%d MB gzip -> %d MB, %d chunks, %d contexts (table %.2f%% of the layer); at most %d compressed bytes fetched for a chunk",
		len(gz)>>20, g.UncompressedSize()>>20, len(chunks), len(ctxs), 100*float64(table)/float64(len(gz)), maxIn)
}
