package convert

import (
	"context"
	"fmt"

	"github.com/gonydus/nydus/rafs/layout"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// pushReferenced pushes, for LayoutDockerRunnable, the data blobs the
// merged bootstrap references (table, in blob-table order) and returns
// their descriptors. Blobs of layers whose data was all deleted above, or
// that hold no file data, are not pushed.
func (c *config) pushReferenced(ctx context.Context, dst *endpoint, built []*builtLayer, table []layout.BlobEntry) ([]ocispec.Descriptor, error) {
	byID := map[string]*builtLayer{}
	for _, b := range built {
		byID[b.digest.Encoded()] = b
	}
	descs := make([]ocispec.Descriptor, len(table))
	g, _ := errgroup.WithContext(ctx)
	g.SetLimit(c.parallelism)
	for i := range table {
		b := byID[table[i].ID()]
		if b == nil {
			return nil, fmt.Errorf("merged bootstrap references blob %s, which no layer produced", table[i].ID())
		}
		descs[i] = blobDescriptor(b.digest, b.size)
		g.Go(func() error {
			return dst.pushBlob(&blob{digest: b.digest, size: b.size, mediaType: MediaTypeNydusBlob, open: fileBlob(b.path)})
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return descs, nil
}

// pushBlobsManifest pushes the artifact manifest that refers to the
// image's data blobs (subject: the image manifest), so registry garbage
// collection keeps them. Registries that refuse it only cost a warning:
// the image is complete without it.
func (c *config) pushBlobsManifest(dst *endpoint, res *Result) {
	m, err := blobsManifest(res.Manifest, res.Blobs)
	if err == nil {
		if err = dst.pushBlob(bytesBlob([]byte("{}"), MediaTypeOCIEmpty)); err == nil {
			err = dst.putManifest(digestOf(m).String(), rawManifest{data: m, mediaType: MediaTypeOCIManifest})
		}
	}
	if err != nil {
		c.log.Warn("blobs manifest not pushed: registry garbage collection may delete the data blobs", "err", err)
	}
}
