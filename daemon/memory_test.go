package daemon_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http/httptest"
	"runtime/debug"
	"testing"

	"github.com/gonydus/nydus/daemon"
)

// TestMetricsMemory checks that /api/v1/metrics/memory reports the
// runtime's memory and its limit, and serves a pprof heap profile.
func TestMetricsMemory(t *testing.T) {
	api := daemon.NewAPI(daemon.New(daemon.Options{}), nil, func() {})
	prev := debug.SetMemoryLimit(123 << 20)
	defer debug.SetMemoryLimit(prev)

	rec := httptest.NewRecorder()
	api.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/metrics/memory?gc=1", nil))
	var m map[string]uint64
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("%d %q: %v", rec.Code, rec.Body, err)
	}
	if m["memory_limit"] != 123<<20 {
		t.Errorf("memory_limit %d, want %d", m["memory_limit"], 123<<20)
	}
	if m["heap_inuse"] == 0 || m["num_gc"] == 0 || m["stack_inuse"] == 0 {
		t.Errorf("memory metrics %v", m)
	}

	rec = httptest.NewRecorder()
	api.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/metrics/memory?profile=heap", nil))
	if rec.Code != 200 {
		t.Fatalf("profile: %d %q", rec.Code, rec.Body)
	}
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatalf("profile is not gzip: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	// The profile's string table names its sample types.
	if !bytes.Contains(raw, []byte("inuse_space")) || !bytes.Contains(raw, []byte("alloc_objects")) {
		t.Errorf("heap profile (%d bytes) names no heap sample types", len(raw))
	}
}
