package convert

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fetchTarget reads the pushed manifest and config of ref.
func fetchTarget(t *testing.T, ref string) *image {
	t.Helper()
	ep, err := Remote{}.resolve(context.Background(), ref, "target")
	if err != nil {
		t.Fatal(err)
	}
	img, err := fetchImage(ep, nil, "target")
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestConvertAndCheck(t *testing.T) {
	cases := []struct {
		name       string
		oci        bool
		layout     Layout
		compressor string
	}{
		{"oci-nydus", true, LayoutNydus, "zstd"},
		{"docker-nydus-lz4", false, LayoutNydus, "lz4_block"},
		{"docker-runnable", false, LayoutDockerRunnable, "zstd"},
		{"oci-runnable-none", true, LayoutDockerRunnable, "none"},
		{"docker-to-oci", false, LayoutNydus, "zstd"}, // with WithOCI
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := newTestRegistry(t)
			srcDigest := pushSource(t, reg, "app", tc.oci)
			ctx := context.Background()
			work := t.TempDir()
			toOCI := tc.name == "docker-to-oci"
			res, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:nydus"), WithChunkSize(0x10000),
				WithWorkDir(work), WithLogger(testLogger(t)), WithLayout(tc.layout), WithCompressor(tc.compressor), WithOCI(toOCI))
			if err != nil {
				t.Fatal(err)
			}
			if left, _ := os.ReadDir(work); len(left) != 0 {
				t.Fatalf("work directory keeps %d files", len(left))
			}
			img := fetchTarget(t, reg.ref("app:nydus"))
			if img.desc.Digest != res.Manifest.Digest {
				t.Fatalf("tag points to %s, Convert reported %s", img.desc.Digest, res.Manifest.Digest)
			}
			checkShape(t, img, res, tc.oci || toOCI, tc.layout)

			rep, err := Check(ctx, reg.ref("app:nydus"), reg.ref("app:latest"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			// 18 paths: / bin bin/tool bin/tool-hard data data/kept dev dev/fifo dev/null dir dir/new
			// etc etc/attr etc/empty etc/passwd etc/suid x x/dangling x/h1 x/h2 (link and data/gone deleted).
			if !rep.Compared || rep.Layout != tc.layout || rep.Paths != 20 || rep.DataBytes == 0 {
				t.Fatalf("report %+v", rep)
			}
			if tc.layout == LayoutDockerRunnable {
				checkBlobsReferrer(t, reg, srcDigest, res)
				checkBackendFile(t, reg, res)
			}
		})
	}
}

// checkShape pins the manifest and config shape.
func checkShape(t *testing.T, img *image, res *Result, oci bool, l Layout) {
	t.Helper()
	m := img.manifest
	mt := dockerTypes
	if oci {
		mt = ociTypes
	}
	if string(img.mediaType) != mt.manifest || m.Config.MediaType != mt.config {
		t.Fatalf("media types %s / %s, want %s / %s", img.mediaType, m.Config.MediaType, mt.manifest, mt.config)
	}
	boot := m.Layers[len(m.Layers)-1]
	if boot.MediaType != mt.bootstrap || boot.Annotations[AnnotationNydusBootstrap] != "true" || boot.Annotations[AnnotationFSVersion] != "6" {
		t.Fatalf("bootstrap layer %+v", boot)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(img.rawConfig, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) || cfg.Config.WorkingDir != "/data" || !slices.Equal(cfg.Config.Cmd, []string{"/bin/tool"}) {
		t.Fatalf("config %+v", cfg)
	}
	last := cfg.History[len(cfg.History)-1]
	if last.CreatedBy != "Nydus Converter" || last.Comment != "Nydus Bootstrap Layer" || last.EmptyLayer {
		t.Fatalf("history %+v", cfg.History)
	}
	nonEmpty := 0
	for _, h := range cfg.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty != len(cfg.RootFS.DiffIDs) {
		t.Fatalf("%d non-empty history entries for %d diff ids", nonEmpty, len(cfg.RootFS.DiffIDs))
	}
	switch l {
	case LayoutNydus:
		if len(m.Layers) != 4 {
			t.Fatalf("%d layers, want 3 blobs + bootstrap", len(m.Layers))
		}
		for i, d := range m.Layers[:3] {
			if d.MediaType != MediaTypeNydusBlob || d.Annotations[AnnotationNydusBlob] != "true" || cfg.RootFS.DiffIDs[i] != d.Digest {
				t.Fatalf("layer %d %+v diff id %s", i, d, cfg.RootFS.DiffIDs[i])
			}
		}
		if _, ok := boot.Annotations[AnnotationBlobs]; ok {
			t.Fatal("nydus layout carries the docker-runnable blob list")
		}
	case LayoutDockerRunnable:
		if len(m.Layers) != 1 {
			t.Fatalf("%d layers, want only the bootstrap", len(m.Layers))
		}
		var blobs []ocispec.Descriptor
		if err := json.Unmarshal([]byte(boot.Annotations[AnnotationBlobs]), &blobs); err != nil {
			t.Fatal(err)
		}
		// The metadata-only third layer's blob holds no chunk: not referenced.
		if len(blobs) != 2 || len(res.Blobs) != 2 || blobs[0].Digest != res.Blobs[0].Digest || blobs[0].MediaType != MediaTypeNydusBlob {
			t.Fatalf("blob list %+v, result %+v", blobs, res.Blobs)
		}
	}
}

// checkBlobsReferrer finds the artifact manifest keeping the blobs.
func checkBlobsReferrer(t *testing.T, reg *testRegistry, _ string, res *Result) {
	t.Helper()
	ep, err := Remote{}.resolve(context.Background(), reg.ref("app:nydus"), "target")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(ep.repo().Digest(res.Manifest.Digest.String()), ep.opts...)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("referrers %+v", im.Manifests)
	}
	// ggcr's registry reports the config media type as artifact type:
	// read the manifest itself.
	d, err := remote.Get(ep.repo().Digest(im.Manifests[0].Digest.String()), ep.opts...)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(d.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.ArtifactType != ArtifactTypeBlobs || m.Subject == nil || m.Subject.Digest != res.Manifest.Digest || len(m.Layers) != len(res.Blobs) {
		t.Fatalf("blobs manifest %s", d.Manifest)
	}
	for i, l := range m.Layers {
		if l.Digest != res.Blobs[i].Digest || l.Size != res.Blobs[i].Size {
			t.Fatalf("blobs manifest layer %d %+v, want %+v", i, l, res.Blobs[i])
		}
	}
}

func TestConvertRejectsNydusSource(t *testing.T) {
	reg := newTestRegistry(t)
	pushSource(t, reg, "app", true)
	ctx := context.Background()
	if _, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:nydus"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t))); err != nil {
		t.Fatal(err)
	}
	_, err := Convert(ctx, reg.ref("app:nydus"), reg.ref("app:again"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
	if !errors.Is(err, ErrAlreadyNydus) {
		t.Fatalf("got %v, want ErrAlreadyNydus", err)
	}
}

func TestConvertUnreachableSource(t *testing.T) {
	reg := newTestRegistry(t)
	dead := newTestRegistry(t)
	deadRef := dead.ref("app:latest")
	dead.srv.Close()
	_, err := Convert(context.Background(), deadRef, reg.ref("app:nydus"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
	if err == nil || !strings.Contains(err.Error(), "source image "+deadRef) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("got %v, want a source image error naming the reference", err)
	}
	t.Log(err)
	// A reference that does not exist is as clear.
	_, err = Convert(context.Background(), reg.ref("nothing:here"), reg.ref("app:nydus"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
	if err == nil || !strings.Contains(err.Error(), "source image "+reg.ref("nothing:here")) || !strings.Contains(err.Error(), "_UNKNOWN") {
		t.Fatalf("got %v, want NAME_UNKNOWN or MANIFEST_UNKNOWN", err)
	}
	t.Log(err)
}

func TestConvertDeniedWrites(t *testing.T) {
	reg := newTestRegistry(t)
	pushSource(t, reg, "app", true)
	reg.wrap = denyWrites
	work := t.TempDir()
	for _, l := range []Layout{LayoutNydus, LayoutDockerRunnable} {
		_, err := Convert(context.Background(), reg.ref("app:latest"), reg.ref("app:nydus"), WithWorkDir(work),
			WithLogger(testLogger(t)), WithLayout(l))
		if err == nil || !strings.Contains(err.Error(), "push blob") || !strings.Contains(err.Error(), "DENIED") {
			t.Fatalf("%s: got %v, want a denied push", l, err)
		}
		t.Log(err)
		if left, _ := os.ReadDir(work); len(left) != 0 {
			t.Fatalf("%s: work directory keeps %d files after a failed push", l, len(left))
		}
	}
}

func TestCheckNydusManifestRules(t *testing.T) {
	reg := newTestRegistry(t)
	pushSource(t, reg, "app", true)
	ctx := context.Background()
	if _, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:nydus"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t))); err != nil {
		t.Fatal(err)
	}
	img := fetchTarget(t, reg.ref("app:nydus"))
	ep, err := Remote{}.resolve(ctx, reg.ref("app:bad"), "target")
	if err != nil {
		t.Fatal(err)
	}
	var cfg0 ocispec.Image
	if err := json.Unmarshal(img.rawConfig, &cfg0); err != nil {
		t.Fatal(err)
	}
	bootDiff := cfg0.RootFS.DiffIDs[len(cfg0.RootFS.DiffIDs)-1]
	cases := []struct {
		name, want string
		mutate     func(m *ocispec.Manifest)
		keepDiffs  bool // leave the config's diff ids as converted
	}{
		{"blob size", "bytes in the registry, the manifest says", func(m *ocispec.Manifest) { m.Layers[0].Size++ }, false},
		{"blob annotation", "want a nydus blob layer", func(m *ocispec.Manifest) { delete(m.Layers[1].Annotations, AnnotationNydusBlob) }, false},
		{"no bootstrap", "lacks containerd.io/snapshot/nydus-bootstrap=true", func(m *ocispec.Manifest) { m.Layers = m.Layers[:len(m.Layers)-1] }, false},
		{"bootstrap first", "lacks containerd.io/snapshot/nydus-bootstrap=true", func(m *ocispec.Manifest) { m.Layers[0], m.Layers[3] = m.Layers[3], m.Layers[0] }, false},
		{"fs version", `nydus-fs-version="5"`, func(m *ocispec.Manifest) { m.Layers[3].Annotations[AnnotationFSVersion] = "5" }, false},
		{"missing blob", "is not in", func(m *ocispec.Manifest) { m.Layers[0].Digest = digest.FromString("gone") }, false},
		{"unlisted blob", "is not listed in the manifest", func(m *ocispec.Manifest) { m.Layers = append(m.Layers[:1], m.Layers[2:]...) }, false},
		{"diff ids", "diff ids for", func(m *ocispec.Manifest) { m.Layers = append(m.Layers[:2], m.Layers[3:]...) }, true},
		{"config media type", "config media type", func(m *ocispec.Manifest) { m.Config.MediaType = MediaTypeDockerConfig }, true},
	}
	for _, tc := range cases {
		var m ocispec.Manifest
		raw, _ := img.img.RawManifest()
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		tc.mutate(&m)
		if !tc.keepDiffs {
			// Diff ids that pair with the mutated layers, so the rule under
			// test is the one that fails.
			cfg := cfg0
			cfg.RootFS.DiffIDs = nil
			for _, l := range m.Layers {
				d := l.Digest
				if l.Annotations[AnnotationNydusBootstrap] == "true" {
					d = bootDiff
				}
				cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, d)
			}
			cb, _ := json.Marshal(cfg)
			b := bytesBlob(cb, MediaTypeOCIConfig)
			if err := ep.pushBlob(b); err != nil {
				t.Fatal(err)
			}
			m.Config.Digest, m.Config.Size = b.digest, b.size
		}
		b, _ := json.Marshal(m)
		if err := ep.putManifest("bad", rawManifest{data: b, mediaType: MediaTypeOCIManifest}); err != nil {
			t.Fatal(err)
		}
		_, err := Check(ctx, reg.ref("app:bad"), "", WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: got %v, want ErrInvalid with %q", tc.name, err, tc.want)
		}
		t.Logf("%s: %v", tc.name, err)
	}
}

func TestCheckTamperedBlob(t *testing.T) {
	for _, l := range []Layout{LayoutNydus, LayoutDockerRunnable} {
		t.Run(l.String(), func(t *testing.T) {
			reg := newTestRegistry(t)
			pushSource(t, reg, "app", true)
			ctx := context.Background()
			res, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:nydus"), WithChunkSize(0x10000),
				WithWorkDir(t.TempDir()), WithLogger(testLogger(t)), WithLayout(l))
			if err != nil {
				t.Fatal(err)
			}
			reg.wrap = corruptBlob(res.Blobs[0].Digest)
			for _, src := range []string{"", reg.ref("app:latest")} {
				_, err = Check(ctx, reg.ref("app:nydus"), src, WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "digest mismatch") {
					t.Fatalf("source %q: got %v, want a chunk digest mismatch", src, err)
				}
				t.Log(err)
			}
		})
	}
}

func TestCheckDetectsWrongContent(t *testing.T) {
	reg := newTestRegistry(t)
	pushSource(t, reg, "app", true)
	pushSource(t, reg, "other", false)
	ctx := context.Background()
	if _, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:nydus"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t))); err != nil {
		t.Fatal(err)
	}
	// A different source: same files but one layer as an empty tar.
	ep, _ := Remote{}.resolve(ctx, reg.ref("other:latest"), "source")
	img := fetchTarget(t, reg.ref("other:latest"))
	raw, _ := img.img.RawManifest()
	var m ocispec.Manifest
	json.Unmarshal(raw, &m)
	m.Layers = m.Layers[:2] // drop the third layer: /link comes back, bin/ keeps 0755
	b, _ := json.Marshal(m)
	if err := ep.putManifest("two", rawManifest{data: b, mediaType: MediaTypeDockerManifest}); err != nil {
		t.Fatal(err)
	}
	_, err := Check(ctx, reg.ref("app:nydus"), reg.ref("other:two"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "/link: not in the nydus image") && !strings.Contains(err.Error(), "/link: missing") {
		t.Fatalf("got %v, want /link reported", err)
	}
	if !strings.Contains(err.Error(), "/bin: mode") {
		t.Fatalf("got %v, want the /bin mode reported", err)
	}
	t.Log(err)
}

// checkBackendFile reads image/backend.json from the bootstrap layer.
func checkBackendFile(t *testing.T, reg *testRegistry, res *Result) {
	t.Helper()
	ep, err := Remote{}.resolve(context.Background(), reg.ref("app:nydus"), "target")
	if err != nil {
		t.Fatal(err)
	}
	l, err := remote.Layer(ep.repo().Digest(res.Bootstrap.Digest.String()), ep.opts...)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files, err := readBootstrapLayer(rc)
	if err != nil {
		t.Fatal(err)
	}
	want := BackendFile{Type: "registry", Config: RegistryBackend{Scheme: "http", Host: reg.host, Repo: "app"}}
	if f := files.backend; f == nil || *f != want {
		t.Fatalf("backend file %+v, want %+v", f, want)
	}
}
