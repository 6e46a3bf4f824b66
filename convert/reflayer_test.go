package convert

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pushGzipSource pushes the test layers, all gzip, as a Docker image.
func pushGzipSource(t *testing.T, reg *testRegistry, repo string) []ocispec.Descriptor {
	t.Helper()
	ep, err := Remote{}.resolve(context.Background(), reg.ref(repo), "source")
	if err != nil {
		t.Fatal(err)
	}
	var descs []ocispec.Descriptor
	var diffIDs []string
	for _, entries := range testLayers(t) {
		raw := tartest.Tar(t, entries...)
		b := bytesBlob(tartest.Gzip(t, raw), MediaTypeDockerLayerGzip)
		if err := ep.pushBlob(b); err != nil {
			t.Fatal(err)
		}
		descs = append(descs, ocispec.Descriptor{MediaType: MediaTypeDockerLayerGzip, Digest: b.digest, Size: b.size})
		diffIDs = append(diffIDs, digest.FromBytes(raw).String())
	}
	cb, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux",
		"config": map[string]any{"Cmd": []string{"/bin/tool"}}, "rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	cblob := bytesBlob(cb, dockerTypes.config)
	if err := ep.pushBlob(cblob); err != nil {
		t.Fatal(err)
	}
	man, err := buildManifest(dockerTypes, &ocispec.Manifest{}, ocispec.Descriptor{MediaType: dockerTypes.config, Digest: cblob.digest, Size: cblob.size}, descs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.putManifest("", rawManifest{data: man, mediaType: dockerTypes.manifest}); err != nil {
		t.Fatal(err)
	}
	return descs
}

// TestConvertOCIRef: gzip layers become zran RAFS blobs that reference
// them; the manifest names each source layer (nydus-ref), the source
// layers become available in another target repository (a cross-repository
// mount), and check reads every file back through zran and compares with
// the source, in both layouts.
func TestConvertOCIRef(t *testing.T) {
	for _, l := range []Layout{LayoutNydus, LayoutDockerRunnable} {
		t.Run(l.String(), func(t *testing.T) {
			reg := newTestRegistry(t)
			src := pushGzipSource(t, reg, "app")
			ctx := context.Background()
			for _, target := range []string{"app:ref", "other/app:ref"} {
				res, err := Convert(ctx, reg.ref("app:latest"), reg.ref(target), WithOCIRef(true), WithLayout(l),
					WithChunkSize(0x10000), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
				if err != nil {
					t.Fatal(err)
				}
				img := fetchTarget(t, reg.ref(target))
				if l == LayoutNydus {
					if len(img.manifest.Layers) != len(src)+1 {
						t.Fatalf("%d layers, want %d", len(img.manifest.Layers), len(src)+1)
					}
					for i, d := range img.manifest.Layers[:len(src)] {
						if d.MediaType != MediaTypeNydusBlob || d.Annotations[AnnotationNydusRef] != src[i].Digest.String() {
							t.Fatalf("layer %d: %+v, want a nydus blob referring to %s", i, d, src[i].Digest)
						}
					}
				}
				// The docker-runnable layout pushes only the RAFS blobs the
				// bootstrap references (the metadata-only layer has none).
				if want := len(src); len(res.Blobs) != want && (l == LayoutNydus || len(res.Blobs) != want-1) {
					t.Fatalf("%d RAFS blobs for %d layers", len(res.Blobs), want)
				}
				rep, err := Check(ctx, reg.ref(target), reg.ref("app:latest"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
				if err != nil {
					t.Fatal(err)
				}
				if !rep.Compared || rep.DataBytes == 0 {
					t.Fatalf("report %+v", rep)
				}
			}
		})
	}
}

// TestConvertOCIRefNeedsGzip: a plain or zstd layer is refused clearly.
func TestConvertOCIRefNeedsGzip(t *testing.T) {
	reg := newTestRegistry(t)
	pushSource(t, reg, "app", false) // its second layer is a plain tar
	_, err := Convert(context.Background(), reg.ref("app:latest"), reg.ref("app:ref"), WithOCIRef(true),
		WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
	if err == nil || !strings.Contains(err.Error(), "--oci-ref needs gzip layers") {
		t.Fatalf("plain layer with --oci-ref: %v", err)
	}
}
