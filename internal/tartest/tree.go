package tartest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/testutil"
)

// TreeGz tars the regular files under roots, named base(root)/relative
// path, up to limit bytes of file data (files over 16 MiB and further
// links to a file already taken are left out, so no one file dominates),
// and compresses the tar with compress/gzip, as docker and containerd push
// layers: a layer of real files (the Go tree, /usr/bin) for benchmarks and
// large round trips. It skips tb when the roots hold no file.
func TreeGz(tb testing.TB, limit int64, roots ...string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	var total int64
	var seen []fs.FileInfo
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || total >= limit || !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil || info.Size() > 16<<20 || slices.ContainsFunc(seen, func(o fs.FileInfo) bool { return os.SameFile(o, info) }) {
				return nil
			}
			seen = append(seen, info)
			f, err := os.Open(p)
			if err != nil {
				return nil
			}
			defer f.Close()
			hdr, err := tar.FileInfoHeader(info, "")
			if err != nil {
				return err
			}
			hdr.Name = filepath.ToSlash(filepath.Join(filepath.Base(root), p[len(root):]))
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			n, err := io.Copy(tw, io.LimitReader(f, hdr.Size))
			total += n
			return err
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if total == 0 {
		testutil.Missing(tb, "files under %v to make a layer of", roots)
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// GunzipTime times `gzip -dc` of the file at path: the baseline layer
// benchmarks compare with.
func GunzipTime(tb testing.TB, path string) time.Duration {
	tb.Helper()
	gz := testutil.RequireBinary(tb, "gzip", "gzip")
	start := time.Now()
	cmd := exec.Command(gz, "-dc", path)
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		tb.Fatalf("gzip -dc %s: %v", path, err)
	}
	return time.Since(start)
}
