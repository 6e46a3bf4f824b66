package convert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// checkManifest applies the manifest rules: media types, annotations, the
// bootstrap layer last, data layers (or the AnnotationBlobs list), and
// diff ids pairing with layers. It fills k.layout, k.blobs and k.boot.
func (k *checker) checkManifest() error {
	m := &k.target.manifest
	mt := dockerTypes
	if k.target.oci() {
		mt = ociTypes
	}
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if m.SchemaVersion != 2 {
		fail("schemaVersion %d, want 2", m.SchemaVersion)
	}
	if m.Config.MediaType != mt.config {
		fail("config media type %q in a %s manifest, want %q", m.Config.MediaType, k.target.mediaType, mt.config)
	}
	n := len(m.Layers)
	if n == 0 {
		return errors.Join(append(errs, errors.New("manifest has no layers"))...)
	}
	k.boot = m.Layers[n-1]
	if k.boot.Annotations[AnnotationNydusBootstrap] != "true" {
		fail("last layer %s lacks %s=true: not a nydus image", k.boot.Digest, AnnotationNydusBootstrap)
	}
	if v := k.boot.Annotations[AnnotationFSVersion]; v != FSVersion {
		fail("bootstrap layer %s=%q, want %q", AnnotationFSVersion, v, FSVersion)
	}
	if k.boot.MediaType != MediaTypeOCILayerGzip && k.boot.MediaType != MediaTypeDockerLayerGzip {
		fail("bootstrap layer media type %q, want a gzip tar layer", k.boot.MediaType)
	}
	if list, ok := k.boot.Annotations[AnnotationBlobs]; ok {
		k.layout = LayoutDockerRunnable
		if n != 1 {
			fail("docker-runnable image (bootstrap annotated %s) has %d layers, want only the bootstrap", AnnotationBlobs, n)
		}
		if err := json.Unmarshal([]byte(list), &k.blobs); err != nil {
			fail("bootstrap layer %s: %v", AnnotationBlobs, err)
		}
		for _, b := range k.blobs {
			if b.MediaType != MediaTypeNydusBlob {
				fail("blob %s listed with media type %q, want %q", b.Digest, b.MediaType, MediaTypeNydusBlob)
			}
		}
	} else {
		k.layout = LayoutNydus
		for i, l := range m.Layers[:n-1] {
			if l.MediaType != MediaTypeNydusBlob || l.Annotations[AnnotationNydusBlob] != "true" {
				fail("layer %d (%s): media type %q, %s=%q: want a nydus blob layer", i, l.Digest, l.MediaType,
					AnnotationNydusBlob, l.Annotations[AnnotationNydusBlob])
			}
			k.blobs = append(k.blobs, l)
		}
	}
	for _, b := range k.blobs {
		if err := b.Digest.Validate(); err != nil || b.Digest.Algorithm() != digest.SHA256 {
			fail("blob digest %q is not a sha256 digest", b.Digest)
		}
	}

	var cfg ocispec.Image
	if err := json.Unmarshal(k.target.rawConfig, &cfg); err != nil {
		return errors.Join(append(errs, fmt.Errorf("decode config: %w", err))...)
	}
	k.diffIDs = cfg.RootFS.DiffIDs
	if len(k.diffIDs) != n {
		fail("config has %d diff ids for %d layers", len(k.diffIDs), n)
	} else {
		for i, l := range m.Layers[:n-1] {
			if k.diffIDs[i] != l.Digest {
				fail("diff id %d is %s, want the blob digest %s", i, k.diffIDs[i], l.Digest)
			}
		}
	}
	if k.source != nil {
		if err := sameRuntimeConfig(k.source.rawConfig, k.target.rawConfig); err != nil {
			fail("%w", err)
		}
	}
	return errors.Join(errs...)
}

// sameRuntimeConfig compares the "config" sections (entrypoint, env, ...)
// of two image configs, as upstream nydusify check does.
func sameRuntimeConfig(src, dst []byte) error {
	var a, b struct {
		Config json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(src, &a); err != nil {
		return fmt.Errorf("decode source config: %w", err)
	}
	if err := json.Unmarshal(dst, &b); err != nil {
		return fmt.Errorf("decode target config: %w", err)
	}
	na, err := normalJSON(a.Config)
	if err != nil {
		return err
	}
	nb, err := normalJSON(b.Config)
	if err != nil {
		return err
	}
	if !bytes.Equal(na, nb) {
		return fmt.Errorf("target config section %s differs from the source's %s", nb, na)
	}
	return nil
}

// normalJSON re-encodes JSON with sorted keys; ArgsEscaped, which
// converters may drop, is ignored.
func normalJSON(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return []byte("null"), nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	if m, ok := v.(map[string]any); ok {
		delete(m, "ArgsEscaped")
	}
	return json.Marshal(v)
}
