package storage_test

import (
	"encoding/json"
	"testing"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
)

// TestMetricsJSON checks the blobcache metrics keys nydusd's API uses and
// that the counters follow reads.
func TestMetricsJSON(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 256<<10)
	m := storage.NewMetrics("/mnt", "/work")
	b := newBlob(t, tb, openCounting(t, tb.path), storage.WithMetrics(m), storage.WithCache(openCache(t, t.TempDir(), tb)), storage.WithAmplify(0))
	if _, err := b.ReadChunks(ctxT(t), tb.chunks[:2]); err != nil { // miss, miss: one merged read
		t.Fatal(err)
	}
	if _, err := b.ReadChunks(ctxT(t), tb.chunks[1:3]); err != nil { // hit, miss
		t.Fatal(err)
	}
	if _, err := b.ReadChunk(ctxT(t), tb.chunks[0], nil); err != nil { // hit
		t.Fatal(err)
	}
	s := m.Snapshot()
	if s.Total != 3 || s.WholeHits != 1 || s.PartialHits != 1 || s.EntriesCount != 1 || s.BackendReads != 2 || s.ReadLatency.Count != 3 || s.CachedReadLatency.Count != 2 {
		t.Fatalf("snapshot %+v", s)
	}
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	json.Unmarshal(raw, &keys)
	for _, k := range []string{"id", "underlying_files", "store_path", "partial_hits", "whole_hits", "total", "entries_count",
		"prefetch_data_amount", "prefetch_requests_count", "prefetch_workers", "prefetch_unmerged_chunks",
		"prefetch_cumulative_time_millis", "prefetch_begin_time_secs", "prefetch_begin_time_millis",
		"prefetch_end_time_secs", "prefetch_end_time_millis", "buffered_backend_size", "data_all_ready"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("metrics JSON lacks %q", k)
		}
	}
	if keys["id"] != "/mnt" || keys["store_path"] != "/work" {
		t.Fatalf("id/store_path: %v %v", keys["id"], keys["store_path"])
	}
}
