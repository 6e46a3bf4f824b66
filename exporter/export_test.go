package exporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gonydus/nydus/convert"
)

// pushSource pushes the layers as an ordinary OCI image (gzip layers),
// the reference convert.Check compares a Nydus image with.
func pushSource(t *testing.T, ref string, layers ...[]byte) {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		tl, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(l)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, tl); err != nil {
			t.Fatal(err)
		}
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

func manifestOf(t *testing.T, ref string) *v1.Manifest {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testConfig() []byte {
	b, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		History: []ocispec.History{{CreatedBy: "base"}, {CreatedBy: "RUN change"}}})
	return b
}

func TestExportPushesAndCaches(t *testing.T) {
	ctx := context.Background()
	host := newRegistry(t)
	c, err := NewCache(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	base := &tarLayer{data: makeTar(t, file{name: "etc/"}, file{name: "etc/hosts", data: "127.0.0.1 localhost\n"},
		file{name: "etc/gone", data: "deleted above"}, file{name: "bin/"}, file{name: "bin/sh", link: "busybox"},
		file{name: "bin/busybox", data: strings.Repeat("busybox!", 40000)})}
	app := &tarLayer{data: makeTar(t, file{name: "etc/"}, file{name: "etc/.wh.gone"}, file{name: "app/"},
		file{name: "app/main", data: "v1"})}
	pushSource(t, host+"/src:1", base.data, app.data)

	export := func(target string, attrs map[string]string, layers ...*tarLayer) *Result {
		t.Helper()
		o, err := ParseAttrs(attrs)
		if err != nil {
			t.Fatal(err)
		}
		req := &Request{Config: testConfig(), Options: o, Log: quiet}
		for _, l := range layers {
			req.Layers = append(req.Layers, l.layer())
		}
		res, err := Export(ctx, c, req)
		if err != nil {
			t.Fatalf("export %s: %v", target, err)
		}
		return res
	}
	target := host + "/app:nydus"
	res := export(target, map[string]string{"name": target + "," + host + "/app:also", "push": "true"}, base, app)
	if res.Converted != 2 || res.Cached != 0 || len(res.Pushed) != 2 {
		t.Fatalf("first export: %+v", res)
	}
	if res.Pushed[0].Manifest.Digest != res.Pushed[1].Manifest.Digest {
		t.Fatal("the two names got different manifests")
	}
	m := manifestOf(t, target)
	if string(m.MediaType) != convert.MediaTypeOCIManifest || len(m.Layers) != 3 {
		t.Fatalf("manifest %s with %d layers", m.MediaType, len(m.Layers))
	}
	for i, l := range m.Layers[:2] {
		if string(l.MediaType) != convert.MediaTypeNydusBlob || l.Annotations[convert.AnnotationNydusBlob] != "true" {
			t.Fatalf("layer %d: %s %v", i, l.MediaType, l.Annotations)
		}
	}
	boot := m.Layers[2]
	if string(boot.MediaType) != convert.MediaTypeOCILayerGzip || boot.Annotations[convert.AnnotationNydusBootstrap] != "true" ||
		boot.Annotations[convert.AnnotationFSVersion] != "6" {
		t.Fatalf("bootstrap layer: %s %v", boot.MediaType, boot.Annotations)
	}
	// Every file read through the bootstrap equals the source image.
	if _, err := convert.Check(ctx, target, host+"/src:1"); err != nil {
		t.Fatalf("check: %v", err)
	}

	// A rebuild with the same layers converts nothing and pushes the same
	// manifest.
	res2 := export(target, map[string]string{"name": target, "push": "true"}, base, app)
	if res2.Converted != 0 || res2.Cached != 2 || res2.Pushed[0].Manifest.Digest != res.Pushed[0].Manifest.Digest {
		t.Fatalf("second export: %+v", res2)
	}
	if base.opens != 1 || app.opens != 1 {
		t.Fatalf("layers read again: base %d, app %d", base.opens, app.opens)
	}
	// A changed top layer: only it is converted.
	app2 := &tarLayer{data: makeTar(t, file{name: "etc/"}, file{name: "etc/.wh.gone"}, file{name: "app/"},
		file{name: "app/main", data: "v2"})}
	res3 := export(target, map[string]string{"name": target, "push": "true"}, base, app2)
	if res3.Converted != 1 || res3.Cached != 1 || base.opens != 1 || app2.opens != 1 {
		t.Fatalf("third export: %+v (base opened %d times)", res3, base.opens)
	}
	pushSource(t, host+"/src:2", base.data, app2.data)
	if _, err := convert.Check(ctx, target, host+"/src:2"); err != nil {
		t.Fatalf("check after the rebuild: %v", err)
	}
	if r := res3.Response(); r["nydus.layers.converted"] != "1" || r["nydus.layers.cached"] != "1" ||
		r["containerimage.digest"] != res3.Pushed[0].Manifest.Digest.String() {
		t.Fatalf("response %v", r)
	}

	// docker-runnable: the bootstrap layer is the only layer.
	drTarget := host + "/app:docker"
	res4 := export(drTarget, map[string]string{"name": drTarget, "push": "true", "docker-runnable": "true"}, base, app2)
	if res4.Converted != 0 {
		t.Fatalf("docker-runnable export converted %d layers again", res4.Converted)
	}
	dm := manifestOf(t, drTarget)
	if len(dm.Layers) != 1 || dm.Layers[0].Annotations[convert.AnnotationBlobs] == "" {
		t.Fatalf("docker-runnable manifest layers %+v", dm.Layers)
	}
	if _, err := convert.Check(ctx, drTarget, host+"/src:2"); err != nil {
		t.Fatalf("check docker-runnable: %v", err)
	}

	// push=false converts (and caches) only.
	res5 := export("", map[string]string{}, base, app2)
	if res5.Cached != 2 || len(res5.Pushed) != 0 {
		t.Fatalf("push=false: %+v", res5)
	}
}

func TestExportUnreachableRegistryLeavesNothing(t *testing.T) {
	ctx := context.Background()
	c, err := NewCache(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	l := &tarLayer{data: makeTar(t, file{name: "a", data: "a"})}
	o, err := ParseAttrs(map[string]string{"name": "127.0.0.1:1/app:x", "push": "true"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Export(ctx, c, &Request{Layers: []Layer{l.layer()}, Config: testConfig(), Options: o})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("got %v, want an error naming the registry", err)
	}
}

func TestExportLayerError(t *testing.T) {
	c, err := NewCache(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ParseAttrs(nil)
	boom := errors.New("content store is gone")
	bad := Layer{DiffID: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
		Open: func(context.Context) (io.ReadCloser, error) { return nil, boom }}
	if _, err := Export(context.Background(), c, &Request{Layers: []Layer{bad}, Options: o}); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}

// recorder is a Progress that remembers its steps.
type recorder struct {
	mu    sync.Mutex
	steps []*recStep
}

type recStep struct {
	name        string
	total, done int64
	finished    bool
}

func (r *recorder) Start(name string, total int64) Step {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &recStep{name: name, total: total}
	r.steps = append(r.steps, s)
	return s
}
func (s *recStep) Advance(n int64) { s.done += n }
func (s *recStep) Done(err error) error {
	s.finished = err == nil
	return err
}

func TestExportProgress(t *testing.T) {
	host := newRegistry(t)
	c, err := NewCache(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	l := &tarLayer{data: makeTar(t, file{name: "a", data: strings.Repeat("a", 1<<20)})}
	o, err := ParseAttrs(map[string]string{"name": host + "/p:1", "push": "true"})
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	layer := l.layer()
	layer.Size = int64(len(l.data))
	if _, err := Export(context.Background(), c, &Request{Layers: []Layer{layer}, Config: testConfig(), Options: o, Progress: &rec, Log: quiet}); err != nil {
		t.Fatal(err)
	}
	if len(rec.steps) != 2 || !strings.HasPrefix(rec.steps[0].name, "converting layer 1/1 sha256:") ||
		rec.steps[0].total != layer.Size || rec.steps[0].done != layer.Size || !rec.steps[0].finished ||
		!strings.HasPrefix(rec.steps[1].name, "pushing nydus image to "+host+"/p:1") || !rec.steps[1].finished {
		for _, s := range rec.steps {
			t.Logf("step %+v", *s)
		}
		t.Fatal("unexpected steps")
	}
	// A failed push leaves its step unfinished.
	o.Names = []string{"127.0.0.1:1/p:1"}
	rec = recorder{}
	if _, err := Export(context.Background(), c, &Request{Layers: []Layer{layer}, Config: testConfig(), Options: o, Progress: &rec, Log: quiet}); err == nil {
		t.Fatal("push to a closed port succeeded")
	}
	if last := rec.steps[len(rec.steps)-1]; !strings.HasPrefix(last.name, "pushing") || last.finished {
		t.Fatalf("last step %+v", *last)
	}
}

func TestExportProgressCached(t *testing.T) {
	c, err := NewCache(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	l := &tarLayer{data: makeTar(t, file{name: "a", data: "a"})}
	o, _ := ParseAttrs(nil)
	// A converted layer shows one conversion step, a cached one only its
	// cache hit.
	for _, want := range []string{"converting layer 1/1 sha256:", "layer 1/1 sha256:"} {
		var rec recorder
		if _, err := Export(context.Background(), c, &Request{Layers: []Layer{l.layer()}, Options: o, Progress: &rec, Log: quiet}); err != nil {
			t.Fatal(err)
		}
		if len(rec.steps) != 1 || !rec.steps[0].finished || !strings.HasPrefix(rec.steps[0].name, want) ||
			strings.Contains(rec.steps[0].name, "cached") != (want == "layer 1/1 sha256:") {
			t.Fatalf("steps %d, first %+v, want %q", len(rec.steps), *rec.steps[0], want)
		}
	}
}
