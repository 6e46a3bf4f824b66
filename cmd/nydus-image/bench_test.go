package main

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/testutil"
)

// benchCorpusLimit caps the benchmark input: real files (the Go toolchain
// tree: source text and binaries, like a typical image layer).
const benchCorpusLimit = 256 << 20

// writeCorpusTar writes up to limit bytes of regular files under root into
// a tar at path, each file copies times under different prefixes.
func writeCorpusTar(tb testing.TB, root, path string, limit int64, copies int) int64 {
	tb.Helper()
	f, err := os.Create(path)
	testutil.Must(tb, err)
	defer f.Close()
	tw := tar.NewWriter(f)
	var total int64
	for c := range copies {
		total = 0
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || total >= limit {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			hdr, err := tar.FileInfoHeader(info, "")
			if err != nil || !(info.Mode().IsRegular() || info.IsDir()) {
				return nil
			}
			hdr.Name = filepath.Join(strings.Repeat("copy/", c), rel)
			if info.IsDir() {
				hdr.Name += "/"
			}
			testutil.Must(tb, tw.WriteHeader(hdr))
			if info.Mode().IsRegular() {
				src, err := os.Open(p)
				if err != nil {
					return err
				}
				n, err := io.Copy(tw, src)
				src.Close()
				if err != nil {
					return err
				}
				total += n
			}
			return nil
		})
		testutil.Must(tb, err)
	}
	testutil.Must(tb, tw.Close())
	st, err := f.Stat()
	testutil.Must(tb, err)
	return st.Size()
}

func timeCmd(tb testing.TB, name string, args ...string) time.Duration {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		tb.Skipf("baseline %s is not installed: %v", name, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout = io.Discard
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s: %v: %s", name, err, stderr.String())
	}
	return time.Since(start)
}

func timeCreate(tb testing.TB, args ...string) (time.Duration, int64) {
	tb.Helper()
	out := tb.TempDir()
	full := append([]string{"create", "--log-level", "warn", "--bootstrap", filepath.Join(out, "boot"), "--blob-dir", out}, args...)
	d := timeCmd(tb, builtBinary(tb), full...)
	var size int64
	ents, err := os.ReadDir(out)
	testutil.Must(tb, err)
	for _, e := range ents {
		if len(e.Name()) == 64 {
			info, err := e.Info()
			testutil.Must(tb, err)
			size += info.Size()
		}
	}
	return d, size
}

func gzipSize(tb testing.TB, path string) int64 {
	f, err := os.Open(path)
	testutil.Must(tb, err)
	defer f.Close()
	cw := &countWriter{}
	zw := gzip.NewWriter(cw)
	_, err = io.Copy(zw, f)
	testutil.Must(tb, err)
	testutil.Must(tb, zw.Close())
	return cw.n
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// BenchmarkTarRafs measures tar-rafs conversion against zstd, lz4 and
// mkfs.erofs on the same input, in the same run, and reports ratios.
func BenchmarkTarRafs(b *testing.B) {
	dir := b.TempDir()
	in := filepath.Join(dir, "layer.tar")
	size := writeCorpusTar(b, runtime.GOROOT(), in, benchCorpusLimit, 1) //nolint:staticcheck // the tree of the toolchain running this test, which is on this machine
	mb := float64(size) / (1 << 20)
	tree := filepath.Join(dir, "tree")
	testutil.Must(b, os.MkdirAll(tree, 0o755))
	if out, err := exec.Command("tar", "-C", tree, "-xf", in).CombinedOutput(); err != nil {
		b.Fatalf("tar -x: %v: %s", err, out)
	}
	b.ResetTimer()
	for range b.N {
		zstdT := timeCmd(b, "zstd", "-T0", "-3", "-q", "-c", in)
		oursZstd, zsize := timeCreate(b, "--type", "tar-rafs", in)
		lz4T := timeCmd(b, "lz4", "-1", "-q", "-c", in)
		oursLZ4, _ := timeCreate(b, "--type", "tar-rafs", "--compressor", "lz4_block", in)
		erofsT := timeCmd(b, "mkfs.erofs", filepath.Join(b.TempDir(), "img"), tree)
		oursDir, _ := timeCreate(b, "--type", "dir-rafs", "--compressor", "none", tree)
		gz := gzipSize(b, in)

		b.ReportMetric(mb/oursZstd.Seconds(), "MB/s_tar-rafs_zstd")
		b.ReportMetric(zstdT.Seconds()/oursZstd.Seconds(), "x_zstd-T0-3")
		b.ReportMetric(lz4T.Seconds()/oursLZ4.Seconds(), "x_lz4-1")
		b.ReportMetric(erofsT.Seconds()/oursDir.Seconds(), "x_mkfs.erofs")
		b.ReportMetric(float64(zsize)/float64(gz), "size_vs_gzip")
		b.Logf("input %.0f MiB: tar-rafs zstd %.0f MB/s (zstd -T0 -3 %.0f MB/s, ratio %.2f); lz4_block %.0f MB/s (lz4 -1 %.0f MB/s, ratio %.2f); "+
			"dir-rafs none %.0f MB/s (mkfs.erofs %.0f MB/s, ratio %.2f); blob %d bytes vs gzip layer %d (%.2f)",
			mb, mb/oursZstd.Seconds(), mb/zstdT.Seconds(), zstdT.Seconds()/oursZstd.Seconds(),
			mb/oursLZ4.Seconds(), mb/lz4T.Seconds(), lz4T.Seconds()/oursLZ4.Seconds(),
			mb/oursDir.Seconds(), mb/erofsT.Seconds(), erofsT.Seconds()/oursDir.Seconds(), zsize, gz, float64(zsize)/float64(gz))
	}
}

// BenchmarkDedup builds a layer holding the corpus twice and reports the
// saving against twice the single-copy blob.
func BenchmarkDedup(b *testing.B) {
	dir := b.TempDir()
	one := filepath.Join(dir, "one.tar")
	two := filepath.Join(dir, "two.tar")
	writeCorpusTar(b, runtime.GOROOT(), one, 64<<20, 1) //nolint:staticcheck // the tree of the toolchain running this test, which is on this machine
	writeCorpusTar(b, runtime.GOROOT(), two, 64<<20, 2) //nolint:staticcheck // the tree of the toolchain running this test, which is on this machine
	b.ResetTimer()
	for range b.N {
		_, s1 := timeCreate(b, "--type", "tar-rafs", one)
		_, s2 := timeCreate(b, "--type", "tar-rafs", two)
		saving := 1 - float64(s2)/float64(2*s1)
		b.ReportMetric(saving*100, "%dedup_saving")
		b.Logf("one copy: blob %d bytes; two copies: blob %d bytes; dedup saving %.1f%% of the naive %d", s1, s2, saving*100, 2*s1)
	}
}
