package rafstest

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

func TestTarAndDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/motd"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, fill := range map[string]builder.FillFunc{
		"tar": Tar(tartest.Dir("etc/"), tartest.File("etc/motd", "hello"), tartest.Symlink("link", "etc/motd")),
		"dir": Dir(dir),
	} {
		t.Run(name, func(t *testing.T) {
			im := Build(t, fill, builder.WithChunkSize(0x1000))
			if len(im.Blob) == 0 || im.BlobID() == "" {
				t.Fatalf("blob of %d bytes, id %q", len(im.Blob), im.BlobID())
			}
			got, err := fs.ReadFile(im.Image.FS(context.Background(), im.Blobs()), "etc/motd")
			if err != nil || string(got) != "hello" {
				t.Fatalf("etc/motd: %q, %v", got, err)
			}
		})
	}
}

func TestAddFile(t *testing.T) {
	var ino *tree.Inode
	im := Build(t, func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		ino = AddFile(t, w, root, "f", []byte("data"), tree.Inode{Mode: 0o4640, UID: 7, GID: 8, Mtime: 1600000000})
		return &tree.Tree{Root: root}, nil
	})
	if ino.Mode != layout.ModeReg|0o4640 || ino.Size != 4 || len(ino.Chunks) != 1 {
		t.Fatalf("inode %+v", ino)
	}
	st, err := fs.Stat(im.Image.FS(context.Background(), im.Blobs()), "f")
	if err != nil || st.Size() != 4 || !st.Mode().IsRegular() || st.Mode()&fs.ModeSetuid == 0 || st.Mode().Perm() != 0o640 {
		t.Fatalf("stat f: %v, %v", st.Mode(), err)
	}
	got, err := fs.ReadFile(im.Image.FS(context.Background(), im.Blobs()), "f")
	if err != nil || string(got) != "data" {
		t.Fatalf("f: %q, %v", got, err)
	}
}
