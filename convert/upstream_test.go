package convert

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gonydus/nydus/internal/testutil"
)

var upstreamDir = testutil.TestdataPath("upstream-nydus")

// TestConvertUpstreamTars converts images whose layers are upstream
// nydus's tar edge-case fixtures (every entry type, a macOS tar with its
// extended headers) and checks them against the source.
func TestConvertUpstreamTars(t *testing.T) {
	for _, name := range []string{"all-entry-type.tar", "all-entry-type-macos.tar"} {
		raw, err := os.ReadFile(filepath.Join(upstreamDir, "tar", name))
		if err != nil {
			testutil.Missing(t, "upstream test vector (%v): put the shared testdata at ../shared/testdata beside the repository or set GONYDUS_TESTDATA", err)
		}
		t.Run(name, func(t *testing.T) {
			reg := newTestRegistry(t)
			ctx := context.Background()
			ep, err := Remote{}.resolve(ctx, reg.ref("up:latest"), "source")
			if err != nil {
				t.Fatal(err)
			}
			layer := bytesBlob(gzipBytes(t, raw), MediaTypeOCILayerGzip)
			if err := ep.pushBlob(layer); err != nil {
				t.Fatal(err)
			}
			cfg, _ := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{},
				"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest.FromBytes(raw).String()}}})
			cb := bytesBlob(cfg, MediaTypeOCIConfig)
			if err := ep.pushBlob(cb); err != nil {
				t.Fatal(err)
			}
			man, err := buildManifest(ociTypes, &ocispec.Manifest{}, ocispec.Descriptor{MediaType: MediaTypeOCIConfig, Digest: cb.digest, Size: cb.size},
				[]ocispec.Descriptor{{MediaType: MediaTypeOCILayerGzip, Digest: layer.digest, Size: layer.size}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := ep.putManifest("", rawManifest{data: man, mediaType: MediaTypeOCIManifest}); err != nil {
				t.Fatal(err)
			}
			for _, l := range []Layout{LayoutNydus, LayoutDockerRunnable} {
				if _, err := Convert(ctx, reg.ref("up:latest"), reg.ref("up:"+l.String()), WithLayout(l), WithWorkDir(t.TempDir()), WithLogger(testLogger(t))); err != nil {
					t.Fatal(err)
				}
				rep, err := Check(ctx, reg.ref("up:"+l.String()), reg.ref("up:latest"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s %s: %d paths, %d bytes", name, l, rep.Paths, rep.DataBytes)
			}
		})
	}
}
