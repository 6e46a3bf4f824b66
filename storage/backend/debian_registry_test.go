package backend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"testing"

	"github.com/gonydus/nydus/internal/testregistry"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/rafstest"
	"github.com/gonydus/nydus/rafs/tree"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/backend"
	"github.com/gonydus/nydus/storage/cache"
)

// TestDebianRegistryChain pushes a RAFS blob to Debian's docker-registry
// and reads every file through the storage chain (registry range reads,
// decompression, digest checks, file cache); reading one file fetches
// exactly that file's chunks.
func TestDebianRegistryChain(t *testing.T) {
	reg := testregistry.StartDebian(t)
	files := map[string][]byte{}
	im := rafstest.Build(t, func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		for i := range 12 {
			data := bytes.Repeat([]byte(fmt.Sprintf("file %d of a registry-backed image\n", i)), 3000*(i+1))
			name := fmt.Sprintf("f%02d", i)
			rafstest.AddFile(t, w, root, name, data, tree.Inode{Mode: 0o644})
			files[name] = data
		}
		return &tree.Tree{Root: root}, nil
	}, builder.WithChunkSize(0x10000), builder.WithTOC(false))
	id := reg.Push(t, "app", im.Blob)
	if id != im.BlobID() {
		t.Fatalf("pushed %s, blob id %s", id, im.BlobID())
	}
	img := im.Image
	raw, _ := json.Marshal(map[string]any{"host": reg.Host, "repo": "app", "scheme": "http", "timeout": 5, "retry_limit": 2})
	be, err := backend.New("registry", raw)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	src, err := storage.NewSource(storage.BackendOpen(be), storage.WithCacheDir(t.TempDir(), cache.WithPersistentMap(true)),
		storage.WithBlobOptions(storage.WithValidate(true), storage.WithAmplify(0)))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	fsys := img.FS(context.Background(), src)

	// One file: exactly its chunks' bytes cross the network.
	got, err := fs.ReadFile(fsys, "f05")
	if err != nil || !bytes.Equal(got, files["f05"]) {
		t.Fatalf("f05: %v", err)
	}
	nid, _ := img.LookupPath("f05")
	chunks, _ := img.Chunks(nid)
	var want uint64
	for _, c := range chunks {
		want += uint64(c.Info.CompressedSize)
	}
	m := be.Metrics()
	t.Logf("f05: %d chunks, %d compressed bytes; backend: %d reads, %d bytes", len(chunks), want, m.ReadCount, m.ReadAmountTotal)
	if m.ReadAmountTotal != want {
		t.Fatalf("fetched %d bytes for a file of %d compressed bytes", m.ReadAmountTotal, want)
	}
	// Everything else.
	for name, data := range files {
		got, err := fs.ReadFile(fsys, name)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	before := be.Metrics().ReadCount
	for name := range files {
		if _, err := fs.ReadFile(fsys, name); err != nil {
			t.Fatal(err)
		}
	}
	if after := be.Metrics().ReadCount; after != before {
		t.Fatalf("cached reads went to the registry %d times", after-before)
	}
}
