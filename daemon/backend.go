package daemon

import (
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/storage/backend"
)

// BackendOpener turns a backend configuration into a backend.
type BackendOpener func(b config.Backend) (backend.Backend, error)

// OpenBackend opens localfs, registry and http-proxy backends.
func OpenBackend(b config.Backend) (backend.Backend, error) {
	return backend.New(b.Type, b.Settings)
}
