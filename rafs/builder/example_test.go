package builder_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
)

// Building an image from a directory, as `nydus-image create --type
// dir-rafs` does: the data blob streams to any io.Writer and is named by
// its sha256 (the blob id); the bootstrap comes back in the result. The
// code between the markers is the README's example.
func ExampleBuild() {
	dir, err := os.MkdirTemp("", "builder-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/hostname"), []byte("example\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// README begin
	var blob bytes.Buffer // any io.Writer: a file, a pipe, an upload
	res, err := builder.Build(ctx, func(ctx context.Context, w builder.FileWriter) (*tree.Tree, error) {
		return source.FromDir(ctx, rootfs, w) // or source.FromTar(ctx, r, w): plain, gzip or zstd
	}, &blob) // defaults: zstd chunks, blake3 digests, 1 MiB chunks, blob ToC
	if err != nil {
		log.Fatal(err)
	}
	// res.Blob.ID() names the blob (its sha256); res.Bootstrap is the image's metadata.
	fmt.Println(res.BootstrapInfo.Inodes, "inodes,", len(res.Blob.Chunks), "chunk")
	// README end

	img, err := rafs.Open(bytes.NewReader(res.Bootstrap), int64(len(res.Bootstrap)))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Inodes(), len(img.Blobs()), img.Blobs()[0].ID() == res.Blob.ID())
	// Output:
	// 3 inodes, 1 chunk
	// 3 1 true
}

// Building from a tar stream, as `nydus-image create --type tar-rafs`
// does: the tar is read once, never unpacked.
func ExampleBuild_tar() {
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	for _, f := range []struct{ name, body string }{{"app/", ""}, {"app/main.txt", "hello\n"}} {
		hdr := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}
		if f.body == "" {
			hdr.Mode, hdr.Typeflag = 0o755, tar.TypeDir
		}
		if err := tw.WriteHeader(hdr); err != nil {
			log.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			log.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		log.Fatal(err)
	}

	var blob bytes.Buffer
	res, err := builder.Build(context.Background(), func(ctx context.Context, w builder.FileWriter) (*tree.Tree, error) {
		return source.FromTar(ctx, &layer, w)
	}, &blob)
	if err != nil {
		log.Fatal(err)
	}
	img, err := rafs.Open(bytes.NewReader(res.Bootstrap), int64(len(res.Bootstrap)))
	if err != nil {
		log.Fatal(err)
	}
	blobs := rafs.NewLocalBlobs("", map[string]io.ReaderAt{res.Blob.ID(): bytes.NewReader(blob.Bytes())})
	data, err := fs.ReadFile(img.FS(context.Background(), blobs), "app/main.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d chunk(s), %q\n", len(res.Blob.Chunks), data)
	// Output: 1 chunk(s), "hello\n"
}
