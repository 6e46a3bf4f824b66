package convert

import (
	"encoding/json"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// image is a manifest and config fetched from a registry.
type image struct {
	img       v1.Image
	mediaType types.MediaType
	manifest  ocispec.Manifest
	rawConfig []byte
	desc      ocispec.Descriptor // of the manifest
}

// fetchImage resolves ep's reference to the manifest for platform (an
// index is narrowed to it) and reads the manifest and config.
func fetchImage(ep *endpoint, platform *v1.Platform, what string) (*image, error) {
	opts := ep.opts
	if platform != nil {
		opts = append(opts[:len(opts):len(opts)], remote.WithPlatform(*platform))
	}
	img, err := remote.Image(ep.ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s image %s: %w", what, ep.ref, err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, fmt.Errorf("%s image %s: %w", what, ep.ref, err)
	}
	if mt != types.OCIManifestSchema1 && mt != types.DockerManifestSchema2 {
		return nil, fmt.Errorf("%s image %s: unsupported manifest media type %q", what, ep.ref, mt)
	}
	raw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("%s image %s: manifest: %w", what, ep.ref, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s image %s: decode manifest: %w", what, ep.ref, err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("%s image %s: config: %w", what, ep.ref, err)
	}
	dg, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("%s image %s: %w", what, ep.ref, err)
	}
	d, err := parseDigest(dg.String())
	if err != nil {
		return nil, err
	}
	return &image{img: img, mediaType: mt, manifest: m, rawConfig: cfg,
		desc: ocispec.Descriptor{MediaType: string(mt), Digest: d, Size: int64(len(raw))}}, nil
}

// isNydus reports whether m is already a Nydus image.
func isNydus(m *ocispec.Manifest) bool {
	n := len(m.Layers)
	return n > 0 && m.Layers[n-1].Annotations[AnnotationNydusBootstrap] == "true"
}

// oci reports whether the image uses OCI media types.
func (i *image) oci() bool { return i.mediaType == types.OCIManifestSchema1 }
