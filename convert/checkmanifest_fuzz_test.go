package convert

import (
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FuzzCheckManifest runs check's manifest rules on fuzzed target manifests
// and configs (seeded with a valid Nydus manifest of each layout and its
// config), with and without a source config. No panic; a manifest that
// passes ends in an annotated bootstrap layer, names only sha256 blobs and
// has one diff id per layer.
func FuzzCheckManifest(f *testing.F) {
	blob := ocispec.Descriptor{MediaType: MediaTypeNydusBlob, Digest: digest.FromString("blob"), Size: 10,
		Annotations: map[string]string{AnnotationNydusBlob: "true"}}
	boot := ocispec.Descriptor{MediaType: MediaTypeOCILayerGzip, Digest: digest.FromString("boot"), Size: 5,
		Annotations: map[string]string{AnnotationNydusBootstrap: "true", AnnotationFSVersion: FSVersion}}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig},
		Layers: []ocispec.Descriptor{blob, boot}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	cfg, _ := json.Marshal(ocispec.Image{Config: ocispec.ImageConfig{Env: []string{"A=1"}},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{blob.Digest, digest.FromString("boot tar")}}})
	f.Add(mb, cfg, cfg, true)
	list, _ := json.Marshal([]ocispec.Descriptor{blob})
	boot.Annotations[AnnotationBlobs] = string(list)
	m.Layers = []ocispec.Descriptor{boot}
	mb, _ = json.Marshal(m)
	cfg1, _ := json.Marshal(ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString("boot tar")}}})
	f.Add(mb, cfg1, []byte(`{"config":null}`), false)
	f.Fuzz(func(t *testing.T, manifest, config, sourceConfig []byte, withSource bool) {
		var m ocispec.Manifest
		if json.Unmarshal(manifest, &m) != nil {
			return
		}
		k := &checker{log: slog.New(slog.DiscardHandler), target: &image{mediaType: types.OCIManifestSchema1, manifest: m, rawConfig: config}}
		if withSource {
			k.source = &image{mediaType: types.OCIManifestSchema1, rawConfig: sourceConfig}
		}
		if err := k.checkManifest(); err != nil {
			return
		}
		n := len(m.Layers)
		if n == 0 || m.Layers[n-1].Annotations[AnnotationNydusBootstrap] != "true" || len(k.diffIDs) != n {
			t.Fatalf("accepted a manifest of %d layers with %d diff ids", n, len(k.diffIDs))
		}
		for _, b := range k.blobs {
			if b.Digest.Algorithm() != digest.SHA256 || b.Digest.Validate() != nil {
				t.Fatalf("accepted blob digest %q", b.Digest)
			}
		}
	})
}
