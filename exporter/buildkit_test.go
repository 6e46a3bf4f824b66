package exporter

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/moby/buildkit/cache"
	bkexporter "github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPickConfig(t *testing.T) {
	cfg := []byte(`{"os":"linux","architecture":"arm64"}`)
	// Single-platform results with attestations come as Refs.
	src := &bkexporter.Source{Refs: map[string]cache.ImmutableRef{"linux/arm64": nil},
		Metadata: map[string][]byte{exptypes.ExporterImageConfigKey + "/linux/arm64": cfg}}
	if _, got, err := pick(src); err != nil || string(got) != string(cfg) {
		t.Fatalf("per-platform config: %s %v", got, err)
	}
	src = &bkexporter.Source{Metadata: map[string][]byte{exptypes.ExporterImageConfigKey: cfg}}
	if _, got, err := pick(src); err != nil || string(got) != string(cfg) {
		t.Fatalf("config: %s %v", got, err)
	}
	// No config (plain LLB): a minimal one.
	_, got, err := pick(&bkexporter.Source{})
	if err != nil {
		t.Fatal(err)
	}
	var img ocispec.Image
	if err := json.Unmarshal(got, &img); err != nil || img.OS != "linux" || img.RootFS.Type != "layers" {
		t.Fatalf("default config %s: %v", got, err)
	}
	src = &bkexporter.Source{Refs: map[string]cache.ImmutableRef{"linux/amd64": nil, "linux/arm64": nil}}
	if _, _, err := pick(src); err == nil || !strings.Contains(err.Error(), "multi-platform") {
		t.Fatalf("two platforms: %v", err)
	}
}

func TestResolveRejectsUnknownAttribute(t *testing.T) {
	c, err := NewCache(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(c, WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Resolve(context.Background(), 0, map[string]string{"dest": "x"}); err == nil {
		t.Fatal("dest= accepted")
	}
	inst, err := e.Resolve(context.Background(), 3, map[string]string{"name": "r/a", "push": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if inst.ID() != 3 || inst.Type() != Type || inst.Name() != "exporting to nydus image" || inst.Attrs()["name"] != "r/a" {
		t.Fatalf("instance %v %v %v", inst.ID(), inst.Type(), inst.Attrs())
	}
	if _, err := New(nil); err == nil {
		t.Fatal("New without a cache")
	}
	if _, err := New(c, WithLogger(nil)); err == nil {
		t.Fatal("New with a nil logger")
	}
}
