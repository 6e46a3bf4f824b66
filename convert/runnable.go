package convert

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/gonydus/nydus/rafs/layout"
)

// referencedBlobs returns, for LayoutDockerRunnable, the layers whose
// blobs the merged bootstrap references (table), in blob-table order.
// Blobs of layers that hold no file data, or whose data later layers all
// deleted, are left out: nothing will ever read them.
func referencedBlobs(built []*builtLayer, table []layout.BlobEntry) ([]*builtLayer, error) {
	byID := map[string]*builtLayer{}
	for _, b := range built {
		byID[b.tableID] = b
	}
	out := make([]*builtLayer, len(table))
	for i := range table {
		if out[i] = byID[table[i].ID()]; out[i] == nil {
			return nil, fmt.Errorf("merged bootstrap references blob %s, which no layer produced", table[i].ID())
		}
	}
	return out, nil
}

// pushStaged pushes staged blobs in parallel.
func (c *config) pushStaged(ctx context.Context, dst *endpoint, blobs []*builtLayer) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.parallelism)
	for _, b := range blobs {
		g.Go(func() error {
			return dst.withContext(gctx).pushBlob(&blob{digest: b.digest, size: b.size, mediaType: MediaTypeNydusBlob, open: fileBlob(b.path)})
		})
	}
	return g.Wait()
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
