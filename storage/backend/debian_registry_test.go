package backend_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/backend"
)

// startDebianRegistry runs Debian's docker-registry (distribution 2.8) on a
// free loopback port and returns host:port.
func startDebianRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry is not installed (apt-get install docker-registry; .ci/run does)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 100 {
		if resp, err := http.Get("http://" + addr + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("docker-registry did not come up: %s", out.String())
	return ""
}

func pushTo(t *testing.T, base string, data []byte) string {
	t.Helper()
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	resp, err := http.Post(base+"/v2/app/blobs/uploads/", "application/octet-stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest=sha256:"+id, bytes.NewReader(data))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("push: %v %v", err, resp)
	}
	resp.Body.Close()
	return id
}

// TestDebianRegistryChain pushes a RAFS blob to Debian's docker-registry
// and reads every file through the storage chain (registry range reads,
// decompression, digest checks, file cache); reading one file fetches
// exactly that file's chunks.
func TestDebianRegistryChain(t *testing.T) {
	addr := startDebianRegistry(t)
	files := map[string][]byte{}
	var blob bytes.Buffer
	res, err := builder.Build(context.Background(), func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		for i := range 12 {
			data := bytes.Repeat([]byte(fmt.Sprintf("file %d of a registry-backed image\n", i)), 3000*(i+1))
			chunks, err := w.WriteFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				return nil, err
			}
			name := fmt.Sprintf("f%02d", i)
			root.SetChild(name, &tree.Inode{Mode: layout.ModeReg | 0o644, Size: uint64(len(data)), Chunks: chunks})
			files[name] = data
		}
		return &tree.Tree{Root: root}, nil
	}, &blob, builder.Config{Compressor: layout.CompressZstd, Digester: layout.DigestBlake3, ChunkSize: 0x10000, ExplicitUIDGID: true})
	if err != nil {
		t.Fatal(err)
	}
	id := pushTo(t, "http://"+addr, blob.Bytes())
	if id != res.Blob.ID() {
		t.Fatalf("pushed %s, blob id %s", id, res.Blob.ID())
	}
	img, err := rafs.Open(bytes.NewReader(res.Bootstrap), int64(len(res.Bootstrap)))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"host": addr, "repo": "app", "scheme": "http", "timeout": 5, "retry_limit": 2})
	be, err := backend.New("registry", raw)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	opts, err := storage.ConfigOptions(storage.CacheConfig{Type: "blobcache", FileCache: storage.FileCacheConfig{WorkDir: t.TempDir()}},
		storage.ReadConfig{BatchSize: 0, Validate: true})
	if err != nil {
		t.Fatal(err)
	}
	src, err := storage.NewSource(storage.BackendOpen(be), opts...)
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
