package storage

import (
	"context"

	"github.com/gonydus/nydus/storage/backend"
)

// BackendOpen returns the OpenFunc that opens blobs of b (localfs,
// registry, http-proxy).
func BackendOpen(b backend.Backend) OpenFunc {
	return func(ctx context.Context, id string) (BlobReader, error) {
		return b.Open(ctx, id)
	}
}
