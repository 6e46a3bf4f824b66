package tartest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"testing"
)

// Write writes entries to w as a tar stream, with its end marker.
func Write(w io.Writer, entries ...Entry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := e.Header
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			return fmt.Errorf("tartest: %s: %w", h.Name, err)
		}
		if h.Size > 0 {
			if _, err := tw.Write(e.Data); err != nil {
				return fmt.Errorf("tartest: %s: %w", h.Name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("tartest: %w", err)
	}
	return nil
}

// Tar returns entries as a tar stream.
func Tar(tb testing.TB, entries ...Entry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if err := Write(&buf, entries...); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// Reader returns entries as a tar stream to read.
func Reader(tb testing.TB, entries ...Entry) *bytes.Reader {
	tb.Helper()
	return bytes.NewReader(Tar(tb, entries...))
}

// TarGz returns entries as a gzip'd tar stream.
func TarGz(tb testing.TB, entries ...Entry) []byte {
	tb.Helper()
	return Gzip(tb, Tar(tb, entries...))
}
