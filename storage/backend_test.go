package storage_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/backend"
)

// testRegistry is an in-process OCI registry with a middleware that can
// delay blob responses and flip a byte in them.
type testRegistry struct {
	srv     *httptest.Server
	host    string
	delay   time.Duration
	corrupt atomic.Bool
	blobGet atomic.Int64
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	tr := &testRegistry{}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/sha256:") {
			inner.ServeHTTP(w, r)
			return
		}
		tr.blobGet.Add(1)
		time.Sleep(tr.delay)
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if tr.corrupt.Load() && len(body) > 0 {
			body = bytes.Clone(body)
			body[len(body)/2] ^= 0x20
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	}))
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

// push uploads a blob file to repo "test/blobs" (monolithic upload).
func (tr *testRegistry) push(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u := tr.srv.URL + "/v2/test/blobs/blobs/uploads/?digest=sha256:" + filepath.Base(path)
	resp, err := http.Post(u, "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %s", resp.Status)
	}
}

func (tr *testRegistry) backend(t *testing.T) backend.Backend {
	t.Helper()
	cfg, _ := json.Marshal(map[string]any{"scheme": "http", "host": tr.host, "repo": "test/blobs", "timeout": 5})
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
	reg.delay = time.Millisecond
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
	reg.corrupt.Store(true)
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
	reg.corrupt.Store(false)
	for _, c := range tb.chunks {
		got, err := s.ReadChunk(ctxT(t), tb.entry, c)
		if err != nil {
			t.Fatal(err)
		}
		checkChunk(t, tb, c, got)
	}
}
