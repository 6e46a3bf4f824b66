package storage_test

import (
	"bytes"
	"context"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/storage"
)

var upstreamDir = testutil.TestdataPath("upstream-nydus")

// TestUpstreamVectorThroughCache reads the upstream-built RAFS v6 fixture
// (nydus-image 2.2, zstd, blake3) through the cached chain, once cold and
// once warm, and compares with the reference reader.
func TestUpstreamVectorThroughCache(t *testing.T) {
	boot := testutil.ReadTestdata(t, "upstream-nydus", "bootstrap/rafs-v6-2.2.boot")
	img, err := rafs.Open(bytes.NewReader(boot), int64(len(boot)))
	if err != nil {
		t.Fatal(err)
	}
	ref := rafs.NewLocalBlobs(filepath.Join(upstreamDir, "blobs"), nil)
	defer ref.Close()
	tables, err := storage.ChunkTables(img)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	counters := map[string]*countingReader{}
	for pass := range 2 {
		src, err := storage.NewSource(localOpen(t, filepath.Join(upstreamDir, "blobs"), counters),
			storage.WithCacheDir(work), storage.WithChunkTables(tables), storage.WithBlobOptions(storage.WithValidate(true)))
		if err != nil {
			t.Fatal(err)
		}
		want, got := img.FS(context.Background(), ref), img.FS(ctxT(t), src)
		files := 0
		err = fs.WalkDir(want, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			a, err := fs.ReadFile(want, p)
			if err != nil {
				return err
			}
			b, err := fs.ReadFile(got, p)
			if err != nil {
				return err
			}
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs", p)
			}
			files++
			return nil
		})
		if err != nil || files == 0 {
			t.Fatalf("pass %d: %d files, %v", pass, files, err)
		}
		src.Close()
		var reqs int64
		for _, r := range counters {
			reqs += r.requests.Load()
			r.reset()
		}
		if pass == 0 && reqs == 0 || pass == 1 && reqs != 0 {
			t.Fatalf("pass %d made %d backend requests", pass, reqs)
		}
	}
}
