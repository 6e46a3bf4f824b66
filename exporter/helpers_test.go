package exporter

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/opencontainers/go-digest"
)

// quiet drops log lines.
var quiet = slog.New(slog.DiscardHandler)

// file is one entry of a generated layer: a directory (name ends in /),
// a regular file or, with link, a symlink.
type file struct {
	name, data, link string
}

func makeTar(t *testing.T, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o644, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		switch {
		case strings.HasSuffix(f.name, "/"):
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case f.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarLayer is a Layer over an in-memory tar; opens counts its reads.
type tarLayer struct {
	data  []byte
	opens int
}

func (l *tarLayer) layer() Layer {
	return Layer{DiffID: digest.FromBytes(l.data), Open: func(context.Context) (io.ReadCloser, error) {
		l.opens++
		return io.NopCloser(bytes.NewReader(l.data)), nil
	}}
}

// newRegistry starts go-containerregistry's in-process registry and
// returns its host:port.
func newRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
