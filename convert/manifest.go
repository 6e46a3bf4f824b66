package convert

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// mediaTypes are the manifest, config and bootstrap layer media types of
// one manifest flavour.
type mediaTypes struct{ manifest, config, bootstrap string }

var (
	ociTypes    = mediaTypes{MediaTypeOCIManifest, MediaTypeOCIConfig, MediaTypeOCILayerGzip}
	dockerTypes = mediaTypes{MediaTypeDockerManifest, MediaTypeDockerConfig, MediaTypeDockerLayerGzip}
)

// blobDescriptor describes a data blob as a manifest layer.
func blobDescriptor(d digest.Digest, size int64) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: MediaTypeNydusBlob, Digest: d, Size: size,
		Annotations: map[string]string{AnnotationNydusBlob: "true"}}
}

// plainDescriptors drops annotations: media type, digest and size only.
func plainDescriptors(ds []ocispec.Descriptor) []ocispec.Descriptor {
	out := make([]ocispec.Descriptor, len(ds))
	for i, d := range ds {
		out[i] = ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
	}
	return out
}

// bootstrapDescriptor describes the bootstrap layer; blobs, for
// LayoutDockerRunnable, are listed in AnnotationBlobs.
func bootstrapDescriptor(mt mediaTypes, b *bootstrapLayer, blobs []ocispec.Descriptor) (ocispec.Descriptor, error) {
	d := ocispec.Descriptor{MediaType: mt.bootstrap, Digest: b.digest, Size: int64(len(b.data)),
		Annotations: map[string]string{AnnotationNydusBootstrap: "true", AnnotationFSVersion: FSVersion}}
	if blobs != nil {
		v, err := json.Marshal(plainDescriptors(blobs))
		if err != nil {
			return d, err
		}
		d.Annotations[AnnotationBlobs] = string(v)
	}
	return d, nil
}

// rewriteConfig returns the source config with rootfs.diff_ids replaced
// and the bootstrap's history entry appended; every other field is kept as
// the source has it. With onlyBootstrap (LayoutDockerRunnable) the source
// history entries are marked empty_layer, since their layers are not in
// the manifest, so history still pairs with diff_ids.
func rewriteConfig(raw []byte, diffIDs []digest.Digest, onlyBootstrap bool) ([]byte, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("decode source config: %w", err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("decode source config: %q is not a JSON object", raw)
	}
	rootfs, err := json.Marshal(ocispec.RootFS{Type: "layers", DiffIDs: diffIDs})
	if err != nil {
		return nil, err
	}
	cfg["rootfs"] = rootfs
	var history []map[string]json.RawMessage
	if h, ok := cfg["history"]; ok && string(h) != "null" {
		if err := json.Unmarshal(h, &history); err != nil {
			return nil, fmt.Errorf("decode source config history: %w", err)
		}
	}
	for i, e := range history {
		if e == nil {
			return nil, fmt.Errorf("decode source config history: entry %d is not a JSON object", i)
		}
		if onlyBootstrap {
			e["empty_layer"] = json.RawMessage("true")
		}
	}
	entry, err := json.Marshal(ocispec.History{CreatedBy: bootstrapHistoryCreatedBy, Comment: bootstrapHistoryComment})
	if err != nil {
		return nil, err
	}
	var bootEntry map[string]json.RawMessage
	if err := json.Unmarshal(entry, &bootEntry); err != nil {
		return nil, err
	}
	history = append(history, bootEntry)
	if cfg["history"], err = json.Marshal(history); err != nil {
		return nil, err
	}
	return json.Marshal(cfg)
}

// buildManifest lays out the target manifest: the source's annotations,
// the new config and layers, and subject when non-nil (--with-referrer).
func buildManifest(mt mediaTypes, src *ocispec.Manifest, config ocispec.Descriptor, layers []ocispec.Descriptor, subject *ocispec.Descriptor) ([]byte, error) {
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mt.manifest,
		Config: config, Layers: layers, Annotations: src.Annotations, Subject: subject}
	return json.MarshalIndent(m, "", "  ")
}

// blobsManifest is the OCI artifact manifest that keeps a docker-runnable
// image's data blobs referenced: its layers are the blobs, its subject the
// image manifest.
func blobsManifest(subject ocispec.Descriptor, blobs []ocispec.Descriptor) ([]byte, error) {
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIManifest,
		ArtifactType: ArtifactTypeBlobs, Config: ocispec.DescriptorEmptyJSON, Layers: blobs, Subject: &subject}
	if len(m.Layers) == 0 {
		m.Layers = []ocispec.Descriptor{ocispec.DescriptorEmptyJSON}
	}
	return json.MarshalIndent(m, "", "  ")
}
