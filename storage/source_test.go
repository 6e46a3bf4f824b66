package storage_test

import (
	"bytes"
	"context"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/rafstest"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/cache"
)

// buildImage builds a RAFS image of a small directory tree and returns the
// image, the blob directory, the source directory and the build result.
func buildImage(t *testing.T) (*rafs.Image, string, string, *builder.Result) {
	t.Helper()
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 7))
	files := map[string]int{"a/small": 100, "a/b/medium": 300 << 10, "big": 3 << 20, "empty": 0, "c/d/e/f": 64 << 10}
	for name, n := range files {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, fileData(rng, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	im := rafstest.Build(t, rafstest.Dir(src), builder.WithChunkSize(128<<10))
	blobs := t.TempDir()
	if err := os.WriteFile(filepath.Join(blobs, im.BlobID()), im.Blob, 0o644); err != nil {
		t.Fatal(err)
	}
	return im.Image, blobs, src, im.Result
}

// localOpen opens blobs by id from dir, counting requests in counters.
func localOpen(t *testing.T, dir string, counters map[string]*countingReader) storage.OpenFunc {
	return func(ctx context.Context, id string) (storage.BlobReader, error) {
		r := openCounting(t, filepath.Join(dir, id))
		counters[id] = r
		return r, nil
	}
}

// compareTrees reads every regular file of fsys and compares it with dir.
func compareTrees(t *testing.T, fsys fs.FS, dir string) int {
	t.Helper()
	n := 0
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		got, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		want, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: content differs", p)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSourceServesRafsImage(t *testing.T) {
	img, blobs, src, res := buildImage(t)
	work := t.TempDir()
	counters := map[string]*countingReader{}
	tables := func(e *layout.BlobEntry) []*layout.ChunkInfo {
		if e.ID() == res.Blob.ID() {
			return res.Blob.Chunks
		}
		return nil
	}
	s, err := storage.NewSource(localOpen(t, blobs, counters), storage.WithCacheDir(work), storage.WithChunkTables(tables))
	if err != nil {
		t.Fatal(err)
	}
	if n := compareTrees(t, img.FS(ctxT(t), s), src); n != 5 {
		t.Fatalf("compared %d files", n)
	}
	r := counters[res.Blob.ID()]
	cold := r.requests.Load()
	if cold == 0 || cold >= int64(len(res.Blob.Chunks)) {
		t.Fatalf("cold read of %d chunks took %d requests (merging/amplify should cut them)", len(res.Blob.Chunks), cold)
	}
	m := s.Metrics().Snapshot()
	if m.EntriesCount != 1 || len(m.UnderlyingFiles) != 2 || m.StorePath != work {
		t.Fatalf("metrics %+v", m)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A new source over the same work dir reads without the backend.
	counters = map[string]*countingReader{}
	s2, err := storage.NewSource(localOpen(t, blobs, counters), storage.WithCacheDir(work, cache.WithPersistentMap(true)),
		storage.WithBlobOptions(storage.WithValidate(true), storage.WithAmplify(storage.DefaultAmplify)))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	compareTrees(t, img.FS(ctxT(t), s2), src)
	if n := counters[res.Blob.ID()].requests.Load(); n != 0 {
		t.Fatalf("warm source made %d backend requests", n)
	}
	if m := s2.Metrics().Snapshot(); !m.DataAllReady {
		t.Fatalf("data_all_ready false after a full read: %+v", m)
	}
}

func TestChunkTablesFromImage(t *testing.T) {
	img, _, _, res := buildImage(t)
	tables, err := storage.ChunkTables(img)
	if err != nil {
		t.Fatal(err)
	}
	got := tables(&res.Blob.Entry)
	if len(got) != len(res.Blob.Chunks) {
		t.Fatalf("walked %d chunks, blob has %d", len(got), len(res.Blob.Chunks))
	}
	for i := 1; i < len(got); i++ {
		if got[i].CompressedOffset <= got[i-1].CompressedOffset {
			t.Fatal("table not in compressed-offset order")
		}
	}
}
