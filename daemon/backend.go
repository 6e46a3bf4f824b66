package daemon

import (
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/backend"
)

// BackendOpener turns a backend configuration into a blob opener. The
// returned closer releases what the opener holds.
type BackendOpener func(b config.Backend) (storage.OpenFunc, func() error, error)

// OpenBackend opens blobs through the storage/backend package (localfs,
// registry, http-proxy).
func OpenBackend(b config.Backend) (storage.OpenFunc, func() error, error) {
	be, err := backend.New(b.Type, b.Settings)
	if err != nil {
		return nil, nil, err
	}
	return storage.BackendOpen(be), be.Close, nil
}
