package convert

import (
	"encoding/json"
	"fmt"
)

// BackendFile is image/backend.json in the bootstrap layer of a
// LayoutDockerRunnable image: where the data blobs were pushed, as the
// backend section of a nydusd configuration (device.backend), without
// credentials. A Docker graphdriver sees the files of the layers it is
// given, never the manifest, so this is how it finds the blobs; its own
// configuration supplies credentials and may override the location (an
// image copied elsewhere keeps the file).
type BackendFile struct {
	// Type is "registry".
	Type   string          `json:"type"`
	Config RegistryBackend `json:"config"`
}

// RegistryBackend is the registry backend's location.
type RegistryBackend struct {
	// Scheme is "https" or "http", as the converter reached the registry.
	Scheme string `json:"scheme"`
	// Host is the registry host (and port) as in the image reference:
	// "registry.example.com:5000", "index.docker.io".
	Host string `json:"host"`
	// Repo is the repository path in that registry.
	Repo string `json:"repo"`
	// SkipVerify is set when the image was pushed with --target-insecure.
	SkipVerify bool `json:"skip_verify,omitempty"`
}

// credentialKeys may never appear in a backend file: images are public
// artifacts.
var credentialKeys = []string{"auth", "registry_token", "password", "username"}

// parseBackendFile decodes image/backend.json strictly: a registry
// backend with a host and a repository, and no credentials.
func parseBackendFile(b []byte) (*BackendFile, error) {
	var raw struct {
		Config map[string]json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", BackendFilePath, err)
	}
	for _, k := range credentialKeys {
		if _, ok := raw.Config[k]; ok {
			return nil, fmt.Errorf("%s carries %q: credentials do not belong in an image", BackendFilePath, k)
		}
	}
	var f BackendFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", BackendFilePath, err)
	}
	if f.Type != "registry" || f.Config.Host == "" || f.Config.Repo == "" ||
		(f.Config.Scheme != "http" && f.Config.Scheme != "https") {
		return nil, fmt.Errorf("%s: want a registry backend with scheme, host and repo, got %s", BackendFilePath, b)
	}
	return &f, nil
}
