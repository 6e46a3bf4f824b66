package backend

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/faultproxy"
	"github.com/gonydus/nydus/internal/testregistry"
)

// TestRegistryReads pushes random blobs and reads ranges and whole blobs
// back, counting the requests the registry saw.
func TestRegistryReads(t *testing.T) {
	forEachRegistry(t, func(t *testing.T, reg *testregistry.Registry) {
		data := randomData(1 << 20)
		id := reg.Push(t, "app", data)
		small := randomData(1000)
		smallID := reg.Push(t, "app", small)
		p := faultproxy.New(t, reg.URL)
		b := newReg(t, p.Host(), nil)
		readBack(t, b, id, data)
		readBack(t, b, smallID, small)
		// One HEAD for the size, then one GET per read: 20 ranges, the
		// whole blob and the read across the end.
		if got := p.BlobStats(id).Requests; got != 1+22 {
			t.Fatalf("%d requests for the blob, want 23", got)
		}
		m := b.Metrics()
		if m.ReadCount != 44 || m.ReadErrors != 0 || m.ReadAmountTotal == 0 || m.BackendType != "registry" {
			t.Fatalf("metrics %+v", m)
		}
		var dist uint64
		for _, v := range m.ReadCountBlockSizeDist {
			dist += v
		}
		if dist != m.ReadCount {
			t.Fatalf("block-size distribution counts %d reads of %d", dist, m.ReadCount)
		}
		if _, err := b.Open(context.Background(), "../etc/passwd"); err == nil {
			t.Fatal("path-like blob id accepted")
		}
		blob, _ := b.Open(context.Background(), strings.Repeat("0", 64))
		if _, err := blob.ReadAt(context.Background(), make([]byte, 10), 0); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing blob: %v", err)
		}
	})
}

func TestRegistryAutoScheme(t *testing.T) {
	reg := testregistry.Start(t)
	data := randomData(50_000)
	id := reg.Push(t, "app", data)
	b := newReg(t, reg.Host, map[string]any{"scheme": ""})
	readBack(t, b, id, data) // https fails against a plain server: falls back to http
}
