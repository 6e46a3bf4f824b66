package targzref

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/zran"
)

// benchLayer is a layer the benchmarks build, read and compare.
type benchLayer struct {
	name string
	gz   func(testing.TB) []byte
}

// benchLayers are typical layers: a Go source tree (the Go toolchain's
// src and test), a mixed binary layer (shared libraries) and the
// generated text-and-random layer of the tests.
func benchLayers() []benchLayer {
	return []benchLayer{
		{"go-src", func(tb testing.TB) []byte {
			root := runtime.GOROOT() //nolint:staticcheck // the tree of the toolchain running this test, which is on this machine
			return tartest.TreeGz(tb, 200<<20, filepath.Join(root, "src"), filepath.Join(root, "test"))
		}},
		{"binary", func(tb testing.TB) []byte {
			return tartest.TreeGz(tb, 200<<20, "/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", filepath.Join(runtime.GOROOT(), "pkg")) //nolint:staticcheck // the tree of the toolchain running this test, which is on this machine
		}},
		{"generated", func(tb testing.TB) []byte { return tartest.RandomGz(tb, 1, 200<<20) }},
	}
}

// BenchmarkBuild reports, per layer, targz-ref build time against
// `gzip -dc` of the same layer (both read it from a file) and the RAFS
// blob's size as a share of the layer, with the default context limits
// and with upstream's.
func BenchmarkBuild(b *testing.B) {
	for _, l := range benchLayers() {
		b.Run(l.name, func(b *testing.B) {
			gz := l.gz(b)
			path := filepath.Join(b.TempDir(), "layer.tar.gz")
			if err := os.WriteFile(path, gz, 0o644); err != nil {
				b.Fatal(err)
			}
			build := func(lim zran.Limits) (*Result, time.Duration) {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				start := time.Now()
				res, err := Build(context.Background(), f, io.Discard, WithChunkSize(layout.DefaultChunkSize), WithTOC(true), WithContexts(lim))
				if err != nil {
					b.Fatal(err)
				}
				return res, time.Since(start)
			}
			b.ResetTimer()
			for range b.N {
				gzipT := tartest.GunzipTime(b, path)
				res, ours := build(zran.DefaultLimits())
				up, _ := build(zran.UpstreamLimits())
				pct := 100 * float64(res.MetaSize) / float64(len(gz))
				upPct := 100 * float64(up.MetaSize) / float64(len(gz))
				b.ReportMetric(gzipT.Seconds()/ours.Seconds(), "x_gzip-dc")
				b.ReportMetric(pct, "%rafs_blob_of_layer")
				b.ReportMetric(upPct, "%rafs_blob_upstream_limits")
				// The zran index proper (what nydusd downloads as blob.meta):
				// zstd chunk infos, contexts and dictionaries plus its header.
				metaPct := 100 * float64(res.Entry.CICompressedSize+layout.CCTHeaderSize) / float64(len(gz))
				b.ReportMetric(metaPct, "%blob_meta_of_layer")
				b.Logf("%s: %d MB layer (%d MB tar, %d chunks): build %v, gzip -dc %v (%.2fx); RAFS blob %d bytes (%.2f%%; blob.meta %.2f%%), %d contexts (%d relocated, %d merged); upstream limits: %d bytes (%.2f%%), %d contexts",
					l.name, len(gz)>>20, res.TarSize>>20, len(res.Chunks), ours.Round(time.Millisecond), gzipT.Round(time.Millisecond), gzipT.Seconds()/ours.Seconds(),
					res.MetaSize, pct, metaPct, res.Contexts, res.Relocated, res.Merged, up.MetaSize, upPct, up.Contexts)
			}
		})
	}
}

// BenchmarkReadSmallFile reads one small file from the middle of each
// layer through the zran path (no cache) and reports the layer bytes it
// fetched against the whole layer, and its time against inflating the
// whole layer (what reading that file costs without zran).
func BenchmarkReadSmallFile(b *testing.B) {
	for _, l := range benchLayers() {
		b.Run(l.name, func(b *testing.B) {
			gz := l.gz(b)
			bi := build(b, gz, WithChunkSize(layout.DefaultChunkSize), WithTOC(true))
			name, nid := middleSmallFile(b, bi, gz)
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
				if _, err := fr.ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
					b.Fatal(err)
				}
				lazy := time.Since(start)
				fetched := bi.layer.n.Load()
				b.ReportMetric(float64(fetched), "layer_bytes_fetched")
				b.ReportMetric(float64(len(gz)), "layer_bytes")
				b.ReportMetric(100*float64(fetched)/float64(len(gz)), "%fetched")
				b.ReportMetric(whole.Seconds()/lazy.Seconds(), "x_whole-layer-gunzip")
				b.Logf("%s: %s (%d bytes): fetched %d of %d layer bytes (%.2f%%) in %v; gunzip of the whole layer %v",
					l.name, name, len(buf), fetched, len(gz), 100*float64(fetched)/float64(len(gz)), lazy.Round(time.Microsecond), whole.Round(time.Millisecond))
			}
		})
	}
}

// middleSmallFile returns the file under 8 KiB whose data lies nearest
// the middle of the layer.
func middleSmallFile(b *testing.B, bi *built, gz []byte) (string, uint64) {
	var name string
	var nid uint64
	best := uint64(1 << 63)
	for n, d := range tartest.Files(b, gz) {
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
		if dist < best || (dist == best && n < name) {
			best, name, nid = dist, n, id
		}
	}
	if name == "" {
		b.Fatal("the layer has no file under 8 KiB to read")
	}
	return name, nid
}
