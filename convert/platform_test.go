package convert

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestConvertPlatform converts the arm64 manifest of a two-platform index.
func TestConvertPlatform(t *testing.T) {
	reg := newTestRegistry(t)
	pushSource(t, reg, "app", true)
	ctx := context.Background()
	ep, err := Remote{}.resolve(ctx, reg.ref("app:multi"), "source")
	if err != nil {
		t.Fatal(err)
	}
	amd := fetchTarget(t, reg.ref("app:latest"))
	// The same layers with an arm64 config.
	var cfg map[string]any
	if err := json.Unmarshal(amd.rawConfig, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["architecture"] = "arm64"
	cb, _ := json.Marshal(cfg)
	cblob := bytesBlob(cb, MediaTypeOCIConfig)
	if err := ep.pushBlob(cblob); err != nil {
		t.Fatal(err)
	}
	arm, err := buildManifest(ociTypes, &ocispec.Manifest{}, ocispec.Descriptor{MediaType: MediaTypeOCIConfig, Digest: cblob.digest, Size: cblob.size}, amd.manifest.Layers, nil)
	if err != nil {
		t.Fatal(err)
	}
	armDigest := digest.FromBytes(arm)
	if err := ep.putManifest(armDigest.String(), rawManifest{data: arm, mediaType: MediaTypeOCIManifest}); err != nil {
		t.Fatal(err)
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
		{MediaType: MediaTypeOCIManifest, Digest: amd.desc.Digest, Size: amd.desc.Size, Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{MediaType: MediaTypeOCIManifest, Digest: armDigest, Size: int64(len(arm)), Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64"}},
	}}
	ib, _ := json.Marshal(idx)
	if err := ep.putManifest("multi", rawManifest{data: ib, mediaType: ocispec.MediaTypeImageIndex}); err != nil {
		t.Fatal(err)
	}

	if _, err := Convert(ctx, reg.ref("app:multi"), reg.ref("app:nydus-arm64"), WithPlatform("linux/arm64"),
		WithWorkDir(t.TempDir()), WithLogger(testLogger(t))); err != nil {
		t.Fatal(err)
	}
	got := fetchTarget(t, reg.ref("app:nydus-arm64"))
	var gc ocispec.Image
	if err := json.Unmarshal(got.rawConfig, &gc); err != nil {
		t.Fatal(err)
	}
	if gc.Architecture != "arm64" {
		t.Fatalf("converted %s, want the arm64 manifest", gc.Architecture)
	}
	if _, err := Check(ctx, reg.ref("app:nydus-arm64"), reg.ref("app:multi"), WithPlatform("linux/arm64"),
		WithWorkDir(t.TempDir()), WithLogger(testLogger(t))); err != nil {
		t.Fatal(err)
	}
	if _, err := Convert(ctx, reg.ref("app:multi"), reg.ref("app:nydus-s390x"), WithPlatform("linux/s390x"),
		WithWorkDir(t.TempDir()), WithLogger(testLogger(t))); err == nil {
		t.Fatal("converted a platform the index lacks")
	} else {
		t.Log(err)
	}
	if err := WithPlatform("linux")(&config{}); err == nil {
		t.Fatal("accepted platform without architecture")
	}
}

// TestCheckMergedIndex checks the Nydus side of an index holding the OCI
// and the Nydus manifest for one platform (nydusify --merge-platform).
func TestCheckMergedIndex(t *testing.T) {
	reg := newTestRegistry(t)
	pushSource(t, reg, "app", true)
	ctx := context.Background()
	res, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:nydus"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	src := fetchTarget(t, reg.ref("app:latest"))
	for _, marker := range []string{"os.features", "artifactType"} {
		nydus := ocispec.Descriptor{MediaType: MediaTypeOCIManifest, Digest: res.Manifest.Digest, Size: res.Manifest.Size,
			Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}}
		if marker == "os.features" {
			nydus.Platform.OSFeatures = []string{"nydus.remoteimage.v1"}
		} else {
			nydus.ArtifactType = "application/vnd.nydus.image.manifest.v1+json"
		}
		idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
			{MediaType: MediaTypeOCIManifest, Digest: src.desc.Digest, Size: src.desc.Size, Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
			nydus,
		}}
		ib, _ := json.Marshal(idx)
		ep, _ := Remote{}.resolve(ctx, reg.ref("app:merged"), "target")
		if err := ep.putManifest("merged", rawManifest{data: ib, mediaType: ocispec.MediaTypeImageIndex}); err != nil {
			t.Fatal(err)
		}
		rep, err := Check(ctx, reg.ref("app:merged"), reg.ref("app:latest"), WithPlatform("linux/amd64"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
		if err != nil {
			t.Fatalf("%s: %v", marker, err)
		}
		if rep.Manifest != res.Manifest.Digest {
			t.Fatalf("%s: checked %s, want the nydus manifest %s", marker, rep.Manifest, res.Manifest.Digest)
		}
	}
}

// TestConvertPrefetch: the prefetch table is "/" by default, as upstream
// writes it, or the given paths.
func TestConvertPrefetch(t *testing.T) {
	reg := newTestRegistry(t)
	pushSource(t, reg, "app", true)
	ctx := context.Background()
	for _, tc := range []struct {
		paths []string
		want  []string
	}{{nil, []string{"/"}}, {[]string{"/etc", "/missing", "/etc/passwd", "/bin/tool"}, []string{"/etc", "/bin/tool"}}} {
		opts := []Option{WithWorkDir(t.TempDir()), WithLogger(testLogger(t))}
		if tc.paths != nil {
			opts = append(opts, WithPrefetch(tc.paths))
		}
		res, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:prefetch"), opts...)
		if err != nil {
			t.Fatal(err)
		}
		ep, _ := Remote{}.resolve(ctx, reg.ref("app:prefetch"), "target")
		l, err := remote.Layer(ep.repo().Digest(res.Bootstrap.Digest.String()))
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := l.Compressed()
		files, err := readBootstrapLayer(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		img := openBoot(t, files.boot)
		var want []uint64
		for _, p := range tc.want {
			nid, err := img.LookupPath(p)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, nid)
		}
		if got := img.PrefetchTable(); !slices.Equal(got, want) {
			t.Fatalf("prefetch %v: table %v, want %v (%v)", tc.paths, got, want, tc.want)
		}
	}
	if err := WithPrefetch([]string{"etc"})(&config{}); err == nil {
		t.Fatal("accepted a relative prefetch path")
	}
}

// TestConvertWithReferrer: the Nydus manifest's subject is the source
// manifest, and the referrers API lists it.
func TestConvertWithReferrer(t *testing.T) {
	reg := newTestRegistry(t)
	srcDigest := pushSource(t, reg, "app", true)
	ctx := context.Background()
	res, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:nydus"), WithReferrer(true), WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	img := fetchTarget(t, reg.ref("app:nydus"))
	if s := img.manifest.Subject; s == nil || s.Digest.String() != srcDigest || s.Platform != nil {
		t.Fatalf("subject %+v, want the source manifest %s", s, srcDigest)
	}
	ep, _ := Remote{}.resolve(ctx, reg.ref("app:latest"), "source")
	idx, err := remote.Referrers(ep.repo().Digest(srcDigest), ep.opts...)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest.String() != res.Manifest.Digest.String() {
		t.Fatalf("referrers of the source: %+v", im.Manifests)
	}
	if _, err := Check(ctx, reg.ref("app:nydus"), reg.ref("app:latest"), WithWorkDir(t.TempDir()), WithLogger(testLogger(t))); err != nil {
		t.Fatal(err)
	}
}

// TestConvertReproducible: the same source and options give the same
// manifest digest whatever the parallelism.
func TestConvertReproducible(t *testing.T) {
	reg := newTestRegistry(t)
	pushSource(t, reg, "app", true)
	ctx := context.Background()
	var digests []string
	for _, p := range []int{1, 3} {
		res, err := Convert(ctx, reg.ref("app:latest"), reg.ref("app:nydus"), WithParallelism(p), WithWorkers(p),
			WithWorkDir(t.TempDir()), WithLogger(testLogger(t)))
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, res.Manifest.Digest.String())
	}
	if digests[0] != digests[1] {
		t.Fatalf("manifests %v differ", digests)
	}
}
