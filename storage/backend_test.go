package storage_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/faultproxy"
	"github.com/gonydus/nydus/internal/testregistry"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/backend"
)

// testRegistry is an in-process OCI registry behind a fault proxy, which
// can delay blob responses and corrupt them.
type testRegistry struct {
	reg   *testregistry.InProcess
	proxy *faultproxy.Proxy
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	reg := testregistry.Start(t)
	return &testRegistry{reg: reg, proxy: faultproxy.New(t, reg.URL)}
}

// push uploads a blob file (named by its id) to repo "test/blobs".
func (tr *testRegistry) push(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if id := tr.reg.Push(t, "test/blobs", data); id != filepath.Base(path) {
		t.Fatalf("pushed %s as %s", path, id)
	}
}

// delay holds every blob response back by d.
func (tr *testRegistry) delay(d time.Duration) {
	tr.proxy.Add(faultproxy.Rule{Method: http.MethodGet, Path: faultproxy.BlobPath, Fault: faultproxy.Fault{Delay: d}})
}

// corrupt flips a byte in the middle of every blob response until heal.
func (tr *testRegistry) corrupt() {
	tr.proxy.Add(faultproxy.Rule{Method: http.MethodGet, Path: faultproxy.BlobPath, Fault: faultproxy.Fault{Body: faultproxy.BodyFlipMiddle}})
}

func (tr *testRegistry) heal() { tr.proxy.Clear() }

func (tr *testRegistry) backend(t *testing.T) backend.Backend {
	t.Helper()
	cfg, _ := json.Marshal(map[string]any{"scheme": "http", "host": tr.proxy.Host(), "repo": "test/blobs", "timeout": 5})
	be, err := backend.New("registry", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return be
}

func TestChainOverBackends(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 700<<10, 100, 300<<10)
	reg := newTestRegistry(t)
	reg.delay(time.Millisecond)
	reg.push(t, tb.path)
	local, err := backend.New("localfs", json.RawMessage(`{"dir":"`+filepath.Dir(tb.path)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	for _, be := range []backend.Backend{local, reg.backend(t)} {
		t.Run(be.Type(), func(t *testing.T) {
			work := t.TempDir()
			for pass := range 2 {
				before := be.Metrics().ReadCount
				s, err := storage.NewSource(storage.BackendOpen(be), storage.WithCacheDir(work),
					storage.WithChunkTables(func(*layout.BlobEntry) []*layout.ChunkInfo { return tb.chunks }))
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range tb.chunks {
					got, err := s.ReadChunk(ctxT(t), tb.entry, c)
					if err != nil {
						t.Fatal(err)
					}
					checkChunk(t, tb, c, got)
				}
				m := s.Metrics().Snapshot()
				s.Close()
				reads := be.Metrics().ReadCount - before
				if reads != m.BackendReads {
					t.Fatalf("backend counted %d reads, the chain %d", reads, m.BackendReads)
				}
				if pass == 0 && (reads == 0 || reads >= uint64(len(tb.chunks))) {
					t.Fatalf("cold pass: %d backend reads for %d chunks", reads, len(tb.chunks))
				}
				if pass == 1 && reads != 0 {
					t.Fatalf("warm pass: %d backend reads", reads)
				}
			}
		})
	}
}

func TestCorruptionOverTheNetwork(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 256<<10)
	reg := newTestRegistry(t)
	reg.push(t, tb.path)
	reg.corrupt()
	work := t.TempDir()
	s, err := storage.NewSource(storage.BackendOpen(reg.backend(t)), storage.WithCacheDir(work),
		storage.WithBlobOptions(storage.WithAmplify(0)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range tb.chunks {
		if _, err := s.ReadChunk(ctxT(t), tb.entry, c); !errors.Is(err, storage.ErrDigestMismatch) {
			t.Fatalf("chunk %d over a corrupting link: %v", c.Index, err)
		}
	}
	b, err := s.Blob(ctxT(t), tb.entry)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range tb.chunks {
		if b.Ready(c) {
			t.Fatalf("corrupt chunk %d cached", c.Index)
		}
	}
	// The link heals: the same source now serves good data.
	reg.heal()
	for _, c := range tb.chunks {
		got, err := s.ReadChunk(ctxT(t), tb.entry, c)
		if err != nil {
			t.Fatal(err)
		}
		checkChunk(t, tb, c, got)
	}
}
