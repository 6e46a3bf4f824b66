package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/gonydus/nydus/internal/testregistry"
)

func randomData(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 5))
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

// noEnv hides the machine's IMAGE_PULL_AUTH and docker config.
func noEnv(string) string { return "" }

// newReg returns a registry backend for host (repo "app", plain http,
// short timeouts, 3 retries) with extra settings merged in.
func newReg(t *testing.T, host string, extra map[string]any, opts ...Option) Backend {
	t.Helper()
	cfg := map[string]any{"host": host, "repo": "app", "scheme": "http", "timeout": 2, "connect_timeout": 2, "retry_limit": 3}
	for k, v := range extra {
		cfg[k] = v
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New("registry", raw, append([]Option{WithEnv(noEnv), WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// readBack checks the size and 20 random ranges of a blob, and a read
// across its end.
func readBack(t *testing.T, b Backend, id string, data []byte) {
	t.Helper()
	ctx := context.Background()
	blob, err := b.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	size, err := blob.Size(ctx)
	if err != nil || size != int64(len(data)) {
		t.Fatalf("size %d, %v; want %d", size, err, len(data))
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for range 20 {
		off := rng.IntN(len(data))
		n := 1 + rng.IntN(min(200_000, len(data)-off))
		buf := make([]byte, n)
		k, err := blob.ReadAt(ctx, buf, int64(off))
		if err != nil || k != n || !bytes.Equal(buf, data[off:off+n]) {
			t.Fatalf("read [%d,+%d): %d %v", off, n, k, err)
		}
	}
	whole := make([]byte, len(data))
	if k, err := blob.ReadAt(ctx, whole, 0); err != nil || k != len(data) || !bytes.Equal(whole, data) {
		t.Fatalf("whole blob: %d %v", k, err)
	}
	buf := make([]byte, 100)
	k, err := blob.ReadAt(ctx, buf, int64(len(data)-10))
	if k != 10 || !errors.Is(err, io.EOF) || !bytes.Equal(buf[:10], data[len(data)-10:]) {
		t.Fatalf("read across the end: %d %v", k, err)
	}
}

// forEachRegistry runs f against the in-process registry and Debian's
// docker-registry.
func forEachRegistry(t *testing.T, f func(t *testing.T, reg *testregistry.Registry)) {
	t.Run("inprocess", func(t *testing.T) { f(t, &testregistry.Start(t).Registry) })
	t.Run("debian", func(t *testing.T) { f(t, testregistry.StartDebian(t)) })
}
