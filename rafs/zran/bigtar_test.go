package zran

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"
	"time"
)

// countingReaderAt counts the compressed bytes random reads pull.
type countingReaderAt struct {
	r io.ReaderAt
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}

// goTreeTarGz returns a gzip'd tar of up to limit bytes of the Go tree.
func goTreeTarGz(tb testing.TB, limit int64) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	var total int64
	root := runtime.GOROOT() //nolint:staticcheck // the tree of the toolchain running this test, which is on this machine
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

// TestLayerRoundTrip indexes a ~200 MB layer and reads every file of its
// tar through the index; each read starts at the nearest checkpoint, so the
// compressed bytes it pulls are bounded by the checkpoint spacing.
func TestLayerRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the 200 MB layer")
	}
	gz := goTreeTarGz(t, 200<<20)
	const span = 256 << 10 // denser than the default, to keep 6,000 random reads quick
	ix, err := BuildIndex(bytes.NewReader(gz), span, nil)
	if err != nil {
		t.Fatal(err)
	}
	dropped, err := ix.Verify(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Verify dropped %d checkpoints", dropped)
	t.Logf("%d MB gzip -> %d MB, %d checkpoints, index %.2f%% of the layer", len(gz)>>20, ix.Size>>20, len(ix.Checkpoints), 100*float64(ix.EncodedSize())/float64(len(gz)))
	zr, _ := gzip.NewReader(bytes.NewReader(gz))
	tr := tar.NewReader(zr)
	cr := &countingReaderAt{r: bytes.NewReader(gz)}
	files, checked, maxPulled := 0, 0, int64(0)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 {
			continue
		}
		files++
		// The file's data starts where the tar reader's stream position is
		// minus its length (rounded to the 512-byte record).
		_ = hdr
		off := tarDataOffset(t, gz, files-1)
		got := make([]byte, len(want))
		before := cr.n
		if _, err := ix.ReadAt(cr, got, off); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("file %d at %d: %v", files, off, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("file %d (%s) differs through the index", files, hdr.Name)
		}
		cp, _ := ix.Checkpoint(off)
		pulled := cr.n - before
		// The read starts at the nearest checkpoint and stops within the
		// checkpoint segment holding its end (plus read-ahead buffering).
		endIn := ix.CompressedSize
		if j := sort.Search(len(ix.Checkpoints), func(j int) bool { return ix.Checkpoints[j].Out >= off+int64(len(want)) }); j < len(ix.Checkpoints) {
			endIn = ix.Checkpoints[j].In
		}
		if limit := endIn - cp.In + 256<<10; pulled > limit {
			t.Fatalf("file %d: pulled %d compressed bytes from checkpoint at %d (limit %d)", files, pulled, cp.In, limit)
		}
		maxPulled = max(maxPulled, pulled)
		checked++
	}
	t.Logf("%d of %d files read through the index; at most %d compressed bytes pulled per read", checked, files, maxPulled)
}

// tarDataOffsets maps the i-th non-empty regular file to its data offset
// in the uncompressed tar (computed once per stream).
var tarOffsetsCache = map[int][]int64{}

func tarDataOffset(t *testing.T, gz []byte, i int) int64 {
	offs, ok := tarOffsetsCache[len(gz)]
	if !ok {
		zr, _ := gzip.NewReader(bytes.NewReader(gz))
		cr := &countingStream{r: zr}
		tr := tar.NewReader(cr)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if hdr.Size > 0 {
				offs = append(offs, cr.n)
			}
		}
		tarOffsetsCache[len(gz)] = offs
	}
	return offs[i]
}

type countingStream struct {
	r io.Reader
	n int64
}

func (c *countingStream) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// BenchmarkIndex reports index size as a share of the layer and index
// build throughput as a ratio to `gzip -dc` on the same layer.
func BenchmarkIndex(b *testing.B) {
	gz := goTreeTarGz(b, 200<<20)
	path := filepath.Join(b.TempDir(), "layer.tar.gz")
	if err := os.WriteFile(path, gz, 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		gzipT := gzipDC(b, path)
		f, _ := os.Open(path)
		start := time.Now()
		ix, err := BuildIndex(f, DefaultSpan, nil)
		ours := time.Since(start)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		dropped, err := ix.Verify(bytes.NewReader(gz))
		if err != nil {
			b.Fatal(err)
		}
		verify := time.Since(start)
		b.ReportMetric(gzipT.Seconds()/(ours+verify).Seconds(), "x_gzip-dc_with_verify")
		b.Logf("verify pass %v (%d checkpoints dropped)", verify.Round(time.Millisecond), dropped)
		pct := 100 * float64(ix.EncodedSize()) / float64(len(gz))
		b.ReportMetric(pct, "%index_of_layer")
		b.ReportMetric(gzipT.Seconds()/ours.Seconds(), "x_gzip-dc")
		b.Logf("%d MB layer: index %d bytes (%.2f%%, %d checkpoints); indexing %v vs gzip -dc %v (%.2fx)",
			len(gz)>>20, ix.EncodedSize(), pct, len(ix.Checkpoints), ours.Round(time.Millisecond), gzipT.Round(time.Millisecond), gzipT.Seconds()/ours.Seconds())
	}
}
