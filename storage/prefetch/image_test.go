package prefetch_test

import (
	"context"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/rafstest"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/prefetch"
)

type imageFixture struct {
	img     *rafs.Image
	src     *storage.Source
	backend *countingFile
}

// newImage builds an image of /hot/{x,y} and /cold/big with prefetch
// table prefetchPaths, served by a cached source.
func newImage(t *testing.T, prefetchPaths []string) *imageFixture {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 3))
	for name, n := range map[string]int{"hot/x": 200 << 10, "hot/y": 10 << 10, "cold/big": 2 << 20} {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32() % 5)
		}
		os.WriteFile(p, data, 0o644)
	}
	im := rafstest.Build(t, rafstest.Dir(dir, source.WithPrefetch(prefetchPaths)), builder.WithChunkSize(64<<10))
	img := im.Image
	blobPath := filepath.Join(t.TempDir(), im.BlobID())
	os.WriteFile(blobPath, im.Blob, 0o644)
	f, err := os.Open(blobPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	backend := &countingFile{f: f}
	tables, err := storage.ChunkTables(img)
	if err != nil {
		t.Fatal(err)
	}
	src, err := storage.NewSource(func(context.Context, string) (storage.BlobReader, error) { return backend, nil },
		storage.WithCacheDir(t.TempDir()), storage.WithChunkTables(tables), storage.WithBlobOptions(storage.WithAmplify(0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return &imageFixture{img: img, src: src, backend: backend}
}

// backendReadsFor counts backend requests made while reading path.
func (fx *imageFixture) backendReadsFor(t *testing.T, path string) int64 {
	t.Helper()
	before := fx.backend.requests.Load()
	if _, err := fs.ReadFile(fx.img.FS(ctxT(t), fx.src), path); err != nil {
		t.Fatal(err)
	}
	return fx.backend.requests.Load() - before
}

func runJobs(t *testing.T, jobs []prefetch.Job) {
	t.Helper()
	p, err := prefetch.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Prefetch(ctxT(t), jobs); err != nil {
		t.Fatal(err)
	}
}

func TestForImagePrefetchTable(t *testing.T) {
	fx := newImage(t, []string{"/hot"})
	jobs, err := prefetch.ForImage(ctxT(t), fx.img, fx.src, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || len(jobs[0].Chunks) != 5 { // 4 chunks of x, 1 of y
		t.Fatalf("jobs %+v", jobs)
	}
	runJobs(t, jobs)
	if n := fx.backendReadsFor(t, "hot/x") + fx.backendReadsFor(t, "hot/y"); n != 0 {
		t.Fatalf("prefetched files cost %d backend reads", n)
	}
	if n := fx.backendReadsFor(t, "cold/big"); n == 0 {
		t.Fatal("a file outside the prefetch table was prefetched")
	}
}

func TestForImageFileListOverridesAndRoot(t *testing.T) {
	fx := newImage(t, []string{"/hot"})
	jobs, err := prefetch.ForImage(ctxT(t), fx.img, fx.src, []string{"/"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].Chunks != nil {
		t.Fatalf("root list should prefetch the whole blob: %+v", jobs)
	}
	runJobs(t, jobs)
	if n := fx.backendReadsFor(t, "cold/big"); n != 0 {
		t.Fatalf("whole-blob prefetch left %d reads for cold/big", n)
	}
}

func TestForImageNothingMatched(t *testing.T) {
	fx := newImage(t, nil)
	jobs, err := prefetch.ForImage(ctxT(t), fx.img, fx.src, []string{"/missing"}, false)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("no match, prefetch_all off: %+v %v", jobs, err)
	}
	jobs, err = prefetch.ForImage(ctxT(t), fx.img, fx.src, []string{"/missing"}, true)
	if err != nil || len(jobs) != 1 || jobs[0].Chunks != nil {
		t.Fatalf("no match, prefetch_all on: %+v %v", jobs, err)
	}
}
