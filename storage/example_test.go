package storage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/cache"
	"github.com/gonydus/nydus/storage/prefetch"
)

// Example wires the read chain the way a daemon mounting an image does:
// cache and validation options, chunk tables from the image,
// mount-time prefetch, and file reads through the RAFS reader.
func Example() {
	work, err := os.MkdirTemp("", "storage-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(work)
	blobs := filepath.Join(work, "blobs")
	boot := buildExampleImage(blobs) // a small image whose blob is blobs/<blob id>

	ctx := context.Background()
	img, err := rafs.Open(bytes.NewReader(boot), int64(len(boot)))
	if err != nil {
		panic(err)
	}
	tables, err := storage.ChunkTables(img)
	if err != nil {
		panic(err)
	}
	open := func(ctx context.Context, id string) (storage.BlobReader, error) {
		f, err := os.Open(filepath.Join(blobs, id)) // a registry backend in a daemon
		if err != nil {
			return nil, err
		}
		return storage.ReaderAt(f), nil
	}
	src, err := storage.NewSource(open, storage.WithCacheDir(filepath.Join(work, "cache"), cache.WithPersistentMap(true)),
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
	fmt.Printf("%q %v %d\n", data, m.DataAllReady, m.PrefetchUnmergedChunks)
	// Output: "fn main() {}\n" true 3
}

// buildExampleImage builds an image of two files (three 4 KiB chunks) with
// rafs/builder, writes its blob into dir named by blob id and returns the
// bootstrap.
func buildExampleImage(dir string) []byte {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for name, body := range map[string]string{"lib.rs": "fn main() {}\n", "data.bin": strings.Repeat("x", 5000)} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			panic(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	var blob bytes.Buffer
	res, err := builder.Build(context.Background(), func(ctx context.Context, w builder.FileWriter) (*tree.Tree, error) {
		return source.FromTar(ctx, &layer, w)
	}, &blob, builder.WithChunkSize(0x1000))
	if err != nil {
		panic(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		panic(err)
	}
	if err := os.WriteFile(filepath.Join(dir, res.Blob.ID()), blob.Bytes(), 0o644); err != nil {
		panic(err)
	}
	return res.Bootstrap
}
