package rafs_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
)

// Opening an image and walking it through io/fs: the bootstrap is read
// through an io.ReaderAt, file data through a chunk source (here blob files
// named by blob id in a directory; the storage package adds caches and
// registries). The code between the markers is the README's example.
func ExampleOpen() {
	dir := buildExampleImage() // writes image.boot and blobs/<blob id>
	defer os.RemoveAll(dir)
	defer chdir(chdir(dir)) // back to the previous directory at the end
	ctx := context.Background()

	// README begin
	f, err := os.Open("image.boot")
	if err != nil {
		log.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		log.Fatal(err)
	}
	img, err := rafs.Open(f, st.Size()) // validates every table up front
	if err != nil {
		log.Fatal(err)
	}
	fsys := img.FS(ctx, rafs.NewLocalBlobs("blobs", nil)) // chunks read and verified on demand
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		fmt.Println(p, d.Type())
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	data, err := fs.ReadFile(fsys, "etc/hostname")
	// README end
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", data)
	// Output:
	// . d---------
	// bin d---------
	// bin/sh L---------
	// etc d---------
	// etc/hostname ----------
	// "example\n"
}

// chdir changes the working directory to dir and returns the previous one.
func chdir(dir string) string {
	prev, err := os.Getwd()
	if err != nil {
		log.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		log.Fatal(err)
	}
	return prev
}

// buildExampleImage builds a three-entry tree into a temporary directory
// with rafs/builder, as ExampleBuild in that package shows.
func buildExampleImage() string {
	dir, err := os.MkdirTemp("", "rafs-example")
	if err != nil {
		log.Fatal(err)
	}
	root := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("example\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.Symlink("/usr/bin/busybox", filepath.Join(root, "bin/sh")); err != nil {
		log.Fatal(err)
	}
	var blob bytes.Buffer
	res, err := builder.Build(context.Background(), func(ctx context.Context, w builder.FileWriter) (*tree.Tree, error) {
		return source.FromDir(ctx, root, w)
	}, &blob)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "blobs"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blobs", res.Blob.ID()), blob.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "image.boot"), res.Bootstrap, 0o644); err != nil {
		log.Fatal(err)
	}
	return dir
}
