package convert

import (
	"fmt"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Markers of the Nydus manifest in an index that also holds the OCI one
// (nydusify --merge-platform).
const (
	artifactTypeNydusManifest = "application/vnd.nydus.image.manifest.v1+json"
	osFeatureNydus            = "nydus.remoteimage.v1"
)

// resolveNydus narrows an index reference to the Nydus manifest for
// platform, preferring children marked as Nydus (artifactType or
// os.features) over plain platform matches; a manifest reference is
// returned as is. Check uses it so merged-platform indexes check their
// Nydus side.
func resolveNydus(ep *endpoint, platform *v1.Platform) (*endpoint, error) {
	desc, err := remote.Get(ep.ref, ep.opts...)
	if err != nil {
		return nil, fmt.Errorf("target image %s: %w", ep.ref, err)
	}
	if !desc.MediaType.IsIndex() {
		return ep, nil
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("target image %s: %w", ep.ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("target image %s: %w", ep.ref, err)
	}
	var pick *v1.Descriptor
	for i := range im.Manifests {
		m := &im.Manifests[i]
		if m.Platform == nil || m.Platform.OS != platform.OS || m.Platform.Architecture != platform.Architecture ||
			(platform.Variant != "" && m.Platform.Variant != platform.Variant) {
			continue
		}
		if m.ArtifactType == artifactTypeNydusManifest || slices.Contains(m.Platform.OSFeatures, osFeatureNydus) {
			pick = m
			break
		}
		if pick == nil {
			pick = m
		}
	}
	if pick == nil {
		return nil, fmt.Errorf("target image %s: no manifest for platform %s in the index", ep.ref, platform)
	}
	ref, err := parseRefIn(ep, pick.Digest.String())
	if err != nil {
		return nil, err
	}
	out := *ep
	out.ref = ref
	return &out, nil
}
