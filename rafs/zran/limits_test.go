package zran

import (
	"bytes"
	"compress/gzip"
	"testing"
)

func TestLimitsValidate(t *testing.T) {
	for _, l := range []Limits{DefaultLimits(), UpstreamLimits()} {
		if err := l.Validate(); err != nil {
			t.Errorf("%+v: %v", l, err)
		}
	}
	for _, l := range []Limits{
		{},
		{MinCompressed: 1 << 20, MaxCompressed: 1 << 20, MaxUncompressed: 2 << 20},   // min above half of max
		{MinCompressed: 512 << 10, MaxCompressed: 1 << 20, MaxUncompressed: 9 << 20}, // a merge could pass 16 MiB
		{MinCompressed: 512 << 10, MaxCompressed: 1 << 30, MaxUncompressed: 2 << 20},
		{MinCompressed: 1 << 10, MaxCompressed: 1 << 20, MaxUncompressed: 2 << 20},
	} {
		if err := l.Validate(); err == nil {
			t.Errorf("%+v accepted", l)
		}
		if err := NewGenerator(bytes.NewReader(nil)).SetLimits(l); err == nil {
			t.Errorf("SetLimits(%+v) accepted", l)
		}
	}
}

// Wider limits give fewer contexts, every one within its limits, and
// every chunk still inflates to its data.
func TestGeneratorLimits(t *testing.T) {
	gz := randomTarGz(t, 31, 24<<20, gzip.DefaultCompression, 1)
	var counts []int
	for _, l := range []Limits{UpstreamLimits(), DefaultLimits()} {
		g := NewGenerator(bytes.NewReader(gz))
		if err := g.SetLimits(l); err != nil {
			t.Fatal(err)
		}
		g.SetChunkSize(1 << 20)
		ctxs, chunks, err := generateWith(t, g, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		checkChunks(t, gz, ctxs, chunks)
		for i, c := range ctxs {
			if int64(c.OutLen) > l.MaxUncompressed+(1<<20) {
				t.Errorf("%+v: context %d covers %d bytes", l, i, c.OutLen)
			}
		}
		counts = append(counts, len(ctxs))
	}
	if counts[1] >= counts[0] {
		t.Fatalf("contexts: %d with upstream's limits, %d with the defaults", counts[0], counts[1])
	}
	t.Logf("contexts: %d with upstream's limits, %d with the defaults", counts[0], counts[1])
}

// Stored blocks (incompressible runs) make klauspost over-count its input;
// the generator corrects its reports, so no context needs repair.
func TestGeneratorStoredBlocksNeedNoRepair(t *testing.T) {
	gz := randomTarGz(t, 32, 12<<20, gzip.DefaultCompression, 2)
	g := NewGenerator(bytes.NewReader(gz))
	if err := g.SetLimits(UpstreamLimits()); err != nil {
		t.Fatal(err)
	}
	ctxs, chunks, err := generateWith(t, g, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	checkChunks(t, gz, ctxs, chunks)
	if rel, mer := g.Repairs(); rel != 0 || mer != 0 || g.driftFixes == 0 || len(ctxs) < 5 {
		t.Fatalf("%d contexts: %d relocated, %d merged; %d drift corrections", len(ctxs), rel, mer, g.driftFixes)
	}
	t.Logf("%d contexts, none repaired; %d drift corrections", len(ctxs), g.driftFixes)
}

// TestDecodeContextsRefusesOversized: a context table entry covering more
// than nydusd inflates in one go (a hostile image's way to make readers
// allocate gigabytes) is refused when read.
func TestDecodeContextsRefusesOversized(t *testing.T) {
	ok := Context{In: 10, Out: 0, InLen: 1 << 20, OutLen: MaxContextOut, Dict: make([]byte, 16)}
	if _, err := DecodeContexts(EncodeContexts([]Context{ok}), 1); err != nil {
		t.Fatalf("a context at the limits: %v", err)
	}
	for _, c := range []Context{
		{In: 10, InLen: 1 << 20, OutLen: MaxContextOut + 1},
		{In: 10, InLen: 4<<30 - 1, OutLen: 1 << 20},
		{In: 10, InLen: 1 << 20, OutLen: 4<<30 - 1},
	} {
		if _, err := DecodeContexts(EncodeContexts([]Context{c}), 1); err == nil {
			t.Errorf("context with %d compressed / %d out bytes accepted", c.InLen, c.OutLen)
		}
	}
}
