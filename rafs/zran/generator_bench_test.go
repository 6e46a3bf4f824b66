package zran

import (
	"archive/tar"
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/tartest"
)

// BenchmarkGenerator runs the generator under a tar parser (the targz-ref
// build without digests and RAFS output) over ~200 MB of the Go tree and
// reports its time against `gzip -dc` of the same file, and the context
// table with its dictionaries (uncompressed) as a share of the layer, with
// the default limits and with upstream's.
func BenchmarkGenerator(b *testing.B) {
	gz := tartest.TreeGz(b, 200<<20, runtime.GOROOT()) //nolint:staticcheck // the tree of the toolchain running this test, which is on this machine
	path := filepath.Join(b.TempDir(), "layer.tar.gz")
	if err := os.WriteFile(path, gz, 0o644); err != nil {
		b.Fatal(err)
	}
	run := func(l Limits) ([]Context, time.Duration) {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		start := time.Now()
		g := NewGenerator(f)
		defer g.Close()
		if err := g.SetLimits(l); err != nil {
			b.Fatal(err)
		}
		g.SetChunkSize(1 << 20)
		ctxs, err := tarThrough(g, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		return ctxs, time.Since(start)
	}
	b.ResetTimer()
	for range b.N {
		gzipT := tartest.GunzipTime(b, path)
		ctxs, ours := run(DefaultLimits())
		up, _ := run(UpstreamLimits())
		pct := 100 * float64(len(EncodeContexts(ctxs))) / float64(len(gz))
		upPct := 100 * float64(len(EncodeContexts(up))) / float64(len(gz))
		b.ReportMetric(gzipT.Seconds()/ours.Seconds(), "x_gzip-dc")
		b.ReportMetric(pct, "%contexts_of_layer")
		b.ReportMetric(upPct, "%contexts_upstream_limits")
		b.Logf("%d MB layer: generator %v, gzip -dc %v (%.2fx); %d contexts (%.2f%% of the layer uncompressed), upstream limits %d (%.2f%%)",
			len(gz)>>20, ours.Round(time.Millisecond), gzipT.Round(time.Millisecond), gzipT.Seconds()/ours.Seconds(), len(ctxs), pct, len(up), upPct)
	}
}

// tarThrough parses the tar from g, cutting files into chunks.
func tarThrough(g *Generator, chunkSize int64) ([]Context, error) {
	tr := tar.NewReader(bufio.NewReaderSize(g, 1<<20))
	buf := make([]byte, chunkSize)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		for off := int64(0); off < hdr.Size; off += chunkSize {
			n := min(chunkSize, hdr.Size-off)
			if err := g.BeginChunk(n); err != nil {
				return nil, err
			}
			if _, err := io.ReadFull(tr, buf[:n]); err != nil {
				return nil, err
			}
			if _, err := g.EndChunk(buf[:n]); err != nil {
				return nil, err
			}
		}
	}
	return g.Finish()
}
