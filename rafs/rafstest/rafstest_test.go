package rafstest

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/rafs/builder"
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
