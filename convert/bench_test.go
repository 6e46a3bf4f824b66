package convert

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
)

// goTreeLayers tars GOROOT/src and GOROOT/pkg as two gzip layers.
func goTreeLayers(b *testing.B) (raw, gz [][]byte) {
	root := runtime.GOROOT() //nolint:staticcheck // the tree of the toolchain running this test, which is on this machine
	for _, dir := range []string{"src", "pkg"} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		if _, err := os.Stat(filepath.Join(root, dir)); err != nil {
			b.Skipf("no Go tree to convert (GOROOT without %s): %v", dir, err)
		}
		if err := tw.AddFS(os.DirFS(filepath.Join(root, dir))); err != nil {
			b.Fatalf("tar %s: %v", dir, err)
		}
		tw.Close()
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
		zw.Write(buf.Bytes())
		zw.Close()
		raw, gz = append(raw, buf.Bytes()), append(gz, z.Bytes())
	}
	return raw, gz
}

// BenchmarkConvert converts the Go tree (two gzip layers) from and to an
// in-process registry, and reports the ratio to building the same layers
// from memory to io.Discard, one after the other, in the same run: what
// pulling, staging, pushing and merging cost on top of the RAFS build.
// It also times a full check against the source (every file read back
// through the registry backend and compared).
func BenchmarkConvert(b *testing.B) {
	if testing.Short() {
		b.Skip("skipped under -short: converts and checks a 195 MiB image")
	}
	raw, gz := goTreeLayers(b)
	var total int64
	for _, l := range raw {
		total += int64(len(l))
	}
	reg := newTestRegistry(b)
	ep, _ := Remote{}.resolve(context.Background(), reg.ref("go:latest"), "source")
	var descs []ocispec.Descriptor
	for _, l := range gz {
		bl := bytesBlob(l, MediaTypeOCILayerGzip)
		if err := ep.pushBlob(bl); err != nil {
			b.Fatal(err)
		}
		descs = append(descs, ocispec.Descriptor{MediaType: MediaTypeOCILayerGzip, Digest: bl.digest, Size: bl.size})
	}
	cfg := bytesBlob([]byte(`{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}`), MediaTypeOCIConfig)
	ep.pushBlob(cfg)
	man, _ := buildManifest(ociTypes, &ocispec.Manifest{}, ocispec.Descriptor{MediaType: MediaTypeOCIConfig, Digest: cfg.digest, Size: cfg.size}, descs, nil)
	if err := ep.putManifest("", rawManifest{data: man, mediaType: MediaTypeOCIManifest}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	var base, conv, check time.Duration
	for b.Loop() {
		start := time.Now()
		for _, l := range gz {
			fill := func(ctx context.Context, w builder.FileWriter) (*tree.Tree, error) {
				return source.FromTar(ctx, bytes.NewReader(l), w)
			}
			if _, err := builder.Build(context.Background(), fill, io.Discard, builder.WithInlineBootstrap(true)); err != nil {
				b.Fatal(err)
			}
		}
		base += time.Since(start)
		start = time.Now()
		if _, err := Convert(context.Background(), reg.ref("go:latest"), reg.ref("go:nydus"), WithWorkDir(b.TempDir()), WithLogger(quiet)); err != nil {
			b.Fatal(err)
		}
		conv += time.Since(start)
		start = time.Now()
		if _, err := Check(context.Background(), reg.ref("go:nydus"), reg.ref("go:latest"), WithWorkDir(b.TempDir()), WithLogger(quiet)); err != nil {
			b.Fatal(err)
		}
		check += time.Since(start)
	}
	b.ReportMetric(float64(conv)/float64(base), "x-build-only")
	b.ReportMetric(float64(total)*float64(b.N)/(1<<20)/conv.Seconds(), "convert-MiB/s")
	b.ReportMetric(float64(total)*float64(b.N)/(1<<20)/check.Seconds(), "check-MiB/s")
	b.ReportMetric(float64(total)/(1<<20), "tar-MiB")
}
