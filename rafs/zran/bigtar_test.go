package zran

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
)

// TestLayerRoundTrip runs a ~200 MB layer of the Go tree through the
// generator as a build does (1 MiB chunks, the default limits) and inflates
// every context, checking every chunk's bytes and that a chunk needs no
// more compressed bytes from its context start than the limits allow.
func TestLayerRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 200 MB layer")
	}
	gz := tartest.TreeGz(t, 200<<20, runtime.GOROOT()) //nolint:staticcheck // the tree of the toolchain running this test, which is on this machine
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
