package convert

import (
	"fmt"

	dconfig "github.com/gonydus/nydus/daemon/config"
)

// BackendFile is image/backend.json in the bootstrap layer of a
// LayoutDockerRunnable image: where the data blobs were pushed, as the
// backend section of a nydusd configuration (device.backend), without
// credentials. A Docker graphdriver sees the files of the layers it is
// given, never the manifest, so this is how it finds the blobs; its own
// configuration supplies credentials and may override the location (an
// image copied elsewhere keeps the file). daemon/config owns the format,
// since the graphdriver reads what convert writes.
type BackendFile = dconfig.ImageBackend

// RegistryBackend is the registry backend's location.
type RegistryBackend = dconfig.ImageRegistry

// parseBackendFile decodes image/backend.json strictly: a registry
// backend with a host and a repository, and no credentials or other keys.
func parseBackendFile(b []byte) (*BackendFile, error) {
	f, err := dconfig.ParseImageBackend(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", BackendFilePath, err)
	}
	return f, nil
}
