package rafstest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
)

// Image is an image built in memory and opened.
type Image struct {
	// Image is the opened bootstrap.
	Image *rafs.Image
	// Result is what builder.Build returned.
	Result *builder.Result
	// Blob is the data blob the build wrote.
	Blob []byte
}

// Build builds an image of the tree fill makes, with opts, and opens its
// bootstrap; it fails tb when either fails.
func Build(tb testing.TB, fill builder.FillFunc, opts ...builder.Option) *Image {
	tb.Helper()
	var blob bytes.Buffer
	res, err := builder.Build(context.Background(), fill, &blob, opts...)
	if err != nil {
		tb.Fatalf("build image: %v", err)
	}
	img, err := rafs.Open(bytes.NewReader(res.Bootstrap), int64(len(res.Bootstrap)))
	if err != nil {
		tb.Fatalf("open the built bootstrap: %v", err)
	}
	return &Image{Image: img, Result: res, Blob: blob.Bytes()}
}

// BlobID returns the id of the image's data blob.
func (im *Image) BlobID() string { return im.Result.Blob.ID() }

// Blobs returns a chunk source serving the image's blob from memory.
func (im *Image) Blobs() *rafs.LocalBlobs {
	return rafs.NewLocalBlobs("", map[string]io.ReaderAt{im.BlobID(): bytes.NewReader(im.Blob)})
}
