package convert

import ocispec "github.com/opencontainers/image-spec/specs-go/v1"

// RegistryFile is image/registry.json in the bootstrap layer of a
// LayoutDockerRunnable image: where the data blobs the bootstrap
// references were pushed. Consumers should let their own configuration
// override the location (an image copied elsewhere keeps the file).
type RegistryFile struct {
	// Registry is the registry host (and port) the image was pushed to,
	// as in the reference: "registry.example.com:5000", "index.docker.io".
	Registry string `json:"registry"`
	// Repository is the repository path in that registry.
	Repository string `json:"repository"`
	// Blobs are the data blobs, in blob-table order.
	Blobs []ocispec.Descriptor `json:"blobs"`
}
