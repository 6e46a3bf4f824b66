package storage

import (
	"context"
	"io"
)

// BlobReader reads byte ranges of one stored (compressed) data blob. It is
// what a backend (registry, localfs, http proxy) provides per blob.
type BlobReader interface {
	// ReadAt reads len(p) bytes at off, like io.ReaderAt, bounded by ctx.
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
}

// OpenFunc opens the backend reader of a blob.
type OpenFunc func(ctx context.Context, blob string) (BlobReader, error)

// ReaderAt adapts an io.ReaderAt (a local blob file) to BlobReader.
func ReaderAt(r io.ReaderAt) BlobReader { return readerAt{r} }

type readerAt struct{ r io.ReaderAt }

func (r readerAt) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.ReadAt(p, off)
}
