package exporter

import (
	"bytes"
	"context"
	"io"
	"log/slog"

	"github.com/opencontainers/go-digest"
)

// quiet drops log lines.
var quiet = slog.New(slog.DiscardHandler)

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
