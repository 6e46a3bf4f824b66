package storage_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/gonydus/nydus/rafs/digest"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/cache"
)

const sharedChildEnv = "NYDUS_STORAGE_SHARED_CACHE_CHILD"

// sharedCacheBlobs builds the two blobs of TestSharedCacheConflictingEntries
// (deterministically, so parent and child get the same): the honest image's
// blob, and the other image's blob of the same size and chunk layout but
// other bytes. The other image's entry names the honest blob id.
func sharedCacheBlobs(t testing.TB, dir string) (honest, other *testBlob, otherEntry *layout.BlobEntry) {
	honest = buildBlob(t, dir, 64<<10, layout.CompressZstd, 512<<10)
	other = buildBlob(t, dir, 64<<10, layout.CompressZstd, 256<<10, 256<<10)
	e := *other.entry
	e.SetID(honest.entry.ID())
	return honest, other, &e
}

// TestSharedCacheChild fills a cache work dir as the other image: blob id of
// the honest image, its own chunk table and bytes (verified against its own
// digests). It only runs as the child of TestSharedCacheConflictingEntries.
func TestSharedCacheChild(t *testing.T) {
	work := os.Getenv(sharedChildEnv)
	if work == "" {
		t.Skip("helper process for TestSharedCacheConflictingEntries")
	}
	_, other, entry := sharedCacheBlobs(t, t.TempDir())
	// Bound to its own chunk table, as storage.Source (so nydusd) opens it.
	cf, err := cache.Open(work, entry, cache.WithTable(cache.TableDigest(other.chunks)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := storage.NewBlob(entry, openCounting(t, other.path), storage.WithCache(cf))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got, err := b.ReadChunks(ctxT(t), other.chunks)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range other.chunks {
		checkChunk(t, other, c, got[i])
	}
}

// TestSharedCacheConflictingEntries: two daemons share a cache work dir
// (as with nydus-snapshotter's shared cache dir). Another process, serving
// an image whose blob table names the same blob id with a different chunk
// table and bytes (its own digests, so its reads verify), fills the cache
// first; then this process serves the honest image from that dir with
// validation off (the default). What is served must be the honest bytes:
// both open the cache bound to their chunk tables (cache.WithTable, as
// storage.Source does), so the other image's files are not the honest
// image's (issue 16 item 4; before the binding all 8 chunks were served
// with the other image's bytes).
func TestSharedCacheConflictingEntries(t *testing.T) {
	if os.Getenv(sharedChildEnv) != "" {
		t.Skip("this process is the helper child, not a test run")
	}
	honest, _, _ := sharedCacheBlobs(t, t.TempDir())
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSharedCacheChild$", "-test.count=1", "-test.timeout=50s")
	cmd.Env = append(os.Environ(), sharedChildEnv+"="+work)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the other image's process: %v\n%s", err, out)
	}

	r := openCounting(t, honest.path)
	bound := cache.WithTable(cache.TableDigest(honest.chunks))
	cf := openCache(t, work, honest, bound)
	st := cf.Stats()
	b := newBlob(t, honest, r, storage.WithCache(cf), storage.WithAmplify(0))
	got, err := b.ReadChunks(ctxT(t), honest.chunks)
	if err != nil {
		t.Fatalf("reading the honest image from the shared cache: %v", err)
	}
	poisoned := 0
	for i, c := range honest.chunks {
		if !bytes.Equal(got[i], honest.want[c.Index]) {
			poisoned++
			if digest.Sum(honest.entry.Digester, got[i]) == c.Digest {
				t.Fatalf("chunk %d differs but matches its digest?", c.Index)
			}
		}
	}
	t.Logf("the other process left %d of %d chunks ready; the honest image read %d chunks from the backend; %d of %d chunks served with the other image's bytes",
		st.Ready, st.Chunks, r.requests.Load(), poisoned, len(honest.chunks))
	// With validation too, nothing foreign is found.
	b.Close()
	r.reset()
	b2 := newBlob(t, honest, r, storage.WithCache(openCache(t, work, honest, bound)), storage.WithValidate(true), storage.WithAmplify(0))
	readAll(t, b2, honest)
	if m := b2.Metrics().Snapshot(); int(m.CorruptCached) != poisoned {
		t.Fatalf("validation caught %d of the %d foreign chunks", m.CorruptCached, poisoned)
	}
	if poisoned > 0 || st.Ready != 0 {
		t.Fatalf("cache poisoning across images: %d of %d chunks served from a cache another image filled under the same blob id (%d ready on open)", poisoned, len(honest.chunks), st.Ready)
	}
}
