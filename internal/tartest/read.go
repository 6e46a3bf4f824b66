package tartest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"path"
	"testing"
)

// Files returns the content of the regular files of a tar stream, plain
// or gzip'd, by their cleaned absolute path ("/etc/passwd").
func Files(tb testing.TB, stream []byte) map[string][]byte {
	tb.Helper()
	var r io.Reader = bytes.NewReader(stream)
	if len(stream) >= 2 && stream[0] == 0x1f && stream[1] == 0x8b {
		zr, err := gzip.NewReader(r)
		if err != nil {
			tb.Fatal(err)
		}
		r = zr
	}
	tr := tar.NewReader(bufio.NewReader(r))
	out := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				tb.Fatal(err)
			}
			out[path.Clean("/"+hdr.Name)] = data
		}
	}
}
