package targzref

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"testing"
	"time"

	"github.com/gonydus/nydus/rafs/layout"
)

// BenchmarkReadSmallFile reads one small file of a ~200 MB layer through
// the zran path (no cache) and reports the layer bytes it fetched against
// the whole layer, and its time against inflating the whole layer (what
// reading that file costs without zran).
func BenchmarkReadSmallFile(b *testing.B) {
	gz := layerTarGz(b, 1, 200<<20)
	bi := build(b, gz, Config{ChunkSize: layout.DefaultChunkSize, TOC: true})
	// The small file whose data lies nearest the middle of the layer.
	var name string
	var nid uint64
	best := uint64(1 << 63)
	for n, d := range tarFiles(b, gz) {
		if len(d) == 0 || len(d) >= 8<<10 {
			continue
		}
		id, err := bi.img.LookupPath(n)
		if err != nil {
			b.Fatal(err)
		}
		cs, err := bi.img.Chunks(id)
		if err != nil || len(cs) == 0 {
			b.Fatal(n, err)
		}
		dist := max(cs[0].Info.CompressedOffset, uint64(len(gz)/2)) - min(cs[0].Info.CompressedOffset, uint64(len(gz)/2))
		if dist < best {
			best, name, nid = dist, n, id
		}
	}
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		zr, _ := gzip.NewReader(bytes.NewReader(gz))
		io.Copy(io.Discard, zr)
		whole := time.Since(start)

		bi.layer.n.Store(0)
		src := &Source{Layer: bi.src.Layer, Meta: bi.src.Meta}
		start = time.Now()
		fr, err := bi.img.FileReader(context.Background(), src, nid)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, fr.Size())
		if _, err := fr.ReadAt(buf, 0); err != nil && err != io.EOF {
			b.Fatal(err)
		}
		lazy := time.Since(start)
		fetched := bi.layer.n.Load()
		b.ReportMetric(float64(fetched), "layer_bytes_fetched")
		b.ReportMetric(float64(len(gz)), "layer_bytes")
		b.ReportMetric(100*float64(fetched)/float64(len(gz)), "%fetched")
		b.ReportMetric(whole.Seconds()/lazy.Seconds(), "x_whole-layer-gunzip")
		b.Logf("%s (%d bytes): fetched %d of %d layer bytes (%.2f%%) in %v; gunzip of the whole layer %v",
			name, len(buf), fetched, len(gz), 100*float64(fetched)/float64(len(gz)), lazy.Round(time.Microsecond), whole.Round(time.Millisecond))
	}
}

// BenchmarkBuild reports targz-ref build throughput against gunzip of the
// same layer (the build inflates, parses, digests and verifies contexts).
func BenchmarkBuild(b *testing.B) {
	gz := layerTarGz(b, 1, 200<<20)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		zr, _ := gzip.NewReader(bytes.NewReader(gz))
		n, _ := io.Copy(io.Discard, zr)
		gunzip := time.Since(start)
		start = time.Now()
		res, err := Build(context.Background(), bytes.NewReader(gz), io.Discard, Config{ChunkSize: layout.DefaultChunkSize, TOC: true})
		if err != nil {
			b.Fatal(err)
		}
		ours := time.Since(start)
		b.ReportMetric(gunzip.Seconds()/ours.Seconds(), "x_gunzip")
		b.ReportMetric(100*float64(res.MetaSize)/float64(len(gz)), "%rafs_blob_of_layer")
		b.Logf("%d MB layer (%d MB tar): build %v, gunzip %v; RAFS blob %d bytes, %d contexts (%d relocated, %d merged)",
			len(gz)>>20, n>>20, ours.Round(time.Millisecond), gunzip.Round(time.Millisecond), res.MetaSize, res.Contexts, res.Relocated, res.Merged)
	}
}
