package storage_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/cache"
)

// readAll reads every chunk through b and checks the bytes.
func readAll(t testing.TB, b *storage.Blob, tb *testBlob) {
	t.Helper()
	got, err := b.ReadChunks(ctxT(t), tb.chunks)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range tb.chunks {
		checkChunk(t, tb, c, got[i])
	}
}

// filledCache builds a blob of one file of size bytes, reads all of it
// through a cache in a new work dir and closes the chain.
func filledCache(t *testing.T, comp layout.Compressor, size int) (*testBlob, string, *countingReader) {
	t.Helper()
	tb := buildBlob(t, t.TempDir(), 64<<10, comp, size)
	dir := t.TempDir()
	r := openCounting(t, tb.path)
	b := newBlob(t, tb, r, storage.WithCache(openCache(t, dir, tb)))
	readAll(t, b, tb)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return tb, dir, r
}

func TestRestartReusesCache(t *testing.T) {
	for _, compressed := range []bool{false, true} {
		t.Run(map[bool]string{false: "data", true: "raw"}[compressed], func(t *testing.T) {
			tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 700<<10, 3000, 128<<10)
			dir := t.TempDir()
			r := openCounting(t, tb.path)
			b1 := newBlob(t, tb, r, storage.WithCache(openCache(t, dir, tb, cache.WithCompressed(compressed))))
			readAll(t, b1, tb)
			if r.requests.Load() == 0 {
				t.Fatal("cold read made no backend requests")
			}
			if err := b1.Close(); err != nil {
				t.Fatal(err)
			}
			r.reset()
			cf := openCache(t, dir, tb, cache.WithCompressed(compressed))
			if st := cf.Stats(); st.Ready != st.Chunks || !st.AllReady {
				t.Fatalf("after restart: %+v, want every chunk ready", st)
			}
			b2 := newBlob(t, tb, r, storage.WithCache(cf), storage.WithValidate(true))
			readAll(t, b2, tb)
			for _, c := range tb.chunks {
				if _, err := b2.ReadChunk(ctxT(t), c, nil); err != nil {
					t.Fatal(err)
				}
			}
			if n := r.requests.Load(); n != 0 {
				t.Fatalf("warm restart made %d backend requests", n)
			}
			m := b2.Metrics().Snapshot()
			if m.WholeHits != m.Total || m.Total != uint64(len(tb.chunks))+1 {
				t.Fatalf("metrics after warm reads: %+v", m)
			}
		})
	}
}

func TestCorruptCacheIsDetectedAndRefetched(t *testing.T) {
	tb, dir, r := filledCache(t, layout.CompressZstd, 512<<10)
	victim := tb.chunks[5]
	flipByte(t, filepath.Join(dir, tb.entry.ID()+cache.DataSuffix), int64(victim.UncompressedOffset+100))

	r.reset()
	cf := openCache(t, dir, tb)
	b2 := newBlob(t, tb, r, storage.WithCache(cf), storage.WithValidate(true), storage.WithAmplify(0))
	got, err := b2.ReadChunk(ctxT(t), victim, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkChunk(t, tb, victim, got)
	if n := r.requests.Load(); n != 1 {
		t.Fatalf("corrupt cached chunk: %d backend requests, want 1 refetch", n)
	}
	if m := b2.Metrics().Snapshot(); m.CorruptCached != 1 {
		t.Fatalf("corrupt_cached_chunks = %d", m.CorruptCached)
	}
	// The refetched chunk is good in the cache again.
	if err := cf.Flush(); err != nil {
		t.Fatal(err)
	}
	b2.Close()
	r.reset()
	b3 := newBlob(t, tb, r, storage.WithCache(openCache(t, dir, tb)), storage.WithValidate(true))
	readAll(t, b3, tb)
	if n := r.requests.Load(); n != 0 {
		t.Fatalf("after repair: %d backend requests", n)
	}
}

func TestChunkMapWithWrongSizeIsRebuilt(t *testing.T) {
	tb, dir, r := filledCache(t, layout.CompressLZ4, 256<<10)
	mapPath := filepath.Join(dir, tb.entry.ID()+cache.ChunkMapSuffix)
	f, err := os.OpenFile(mapPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0xff, 0xff, 0xff})
	f.Close()

	cf := openCache(t, dir, tb)
	if st := cf.Stats(); st.Ready != 0 || st.AllReady {
		t.Fatalf("oversized chunk map trusted: %+v", st)
	}
	if st, _ := os.Stat(mapPath); st.Size() != cache.MapSize(tb.entry.ChunkCount) {
		t.Fatalf("rebuilt map has %d bytes", st.Size())
	}
	r.reset()
	b2 := newBlob(t, tb, r, storage.WithCache(cf))
	readAll(t, b2, tb)
	if r.requests.Load() == 0 {
		t.Fatal("rebuilt map served chunks without fetching")
	}
}

// TestOnDiskLayout checks the files against the upstream layout byte by
// byte: header words, bitmap bit order, data at uncompressed offsets.
func TestOnDiskLayout(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 600<<10) // 10 chunks
	dir := t.TempDir()
	r := openCounting(t, tb.path)
	b := newBlob(t, tb, r, storage.WithCache(openCache(t, dir, tb)), storage.WithAmplify(0))
	for _, i := range []int{0, 3, 9} {
		if _, err := b.ReadChunk(ctxT(t), tb.chunks[i], nil); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	id := tb.entry.ID()
	m, err := os.ReadFile(filepath.Join(dir, id+".blob.data.chunk_map"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 4096+2 {
		t.Fatalf("chunk_map of 10 chunks has %d bytes, want 4098", len(m))
	}
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != 0x424D4150 || le.Uint32(m[4:]) != 1 || le.Uint32(m[8:]) != 0x434D4150 || le.Uint32(m[12:]) != 0 {
		t.Fatalf("header words % x", m[:16])
	}
	for _, b := range m[16:4096] {
		if b != 0 {
			t.Fatal("reserved header bytes are not zero")
		}
	}
	// chunk 0 -> 0x80 of byte 0, chunk 3 -> 0x10 of byte 0, chunk 9 -> 0x40 of byte 1.
	if m[4096] != 0x90 || m[4097] != 0x40 {
		t.Fatalf("bitmap % x, want 90 40", m[4096:])
	}
	data, err := os.ReadFile(filepath.Join(dir, id+".blob.data"))
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(data)) != tb.entry.UncompressedSize {
		t.Fatalf(".blob.data has %d bytes, want uncompressed size %d", len(data), tb.entry.UncompressedSize)
	}
	for _, i := range []int{0, 3, 9} {
		c := tb.chunks[i]
		checkChunk(t, tb, c, data[c.UncompressedOffset:c.UncompressedOffset+uint64(c.UncompressedSize)])
	}

	// Reading everything sets all_ready.
	b2 := newBlob(t, tb, r, storage.WithCache(openCache(t, dir, tb)))
	readAll(t, b2, tb)
	b2.Close()
	m, _ = os.ReadFile(filepath.Join(dir, id+".blob.data.chunk_map"))
	if le.Uint32(m[12:]) != 0x4D4D4150 || m[4096] != 0xff || m[4097] != 0xc0 {
		t.Fatalf("complete map: all_ready %#x bitmap % x", le.Uint32(m[12:]), m[4096:])
	}
}

func TestDisableIndexedMapKeepsStateInMemory(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 256<<10)
	dir := t.TempDir()
	r := openCounting(t, tb.path)
	for pass := range 2 {
		b := newBlob(t, tb, r, storage.WithCache(openCache(t, dir, tb, cache.WithPersistentMap(false))))
		readAll(t, b, tb)
		readAll(t, b, tb)
		b.Close()
		if n := r.requests.Load(); n == 0 {
			t.Fatalf("pass %d: an in-memory map was reused across restarts", pass)
		}
		r.reset()
	}
	if _, err := os.Stat(filepath.Join(dir, tb.entry.ID()+cache.ChunkMapSuffix)); !os.IsNotExist(err) {
		t.Fatalf("chunk_map file written with disable_indexed_map: %v", err)
	}
}

// TestRawFileSize checks that compressed mode sizes <blob_id>.blob.raw to
// the blob's chunk data (upstream's compressed_data_size), not the tail.
func TestRawFileSize(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 300<<10)
	dir := t.TempDir()
	cf := openCache(t, dir, tb, cache.WithCompressed(true))
	defer cf.Close()
	var end uint64
	for _, c := range tb.chunks {
		end = max(end, c.CompressedOffset+uint64(c.CompressedSize))
	}
	st, err := os.Stat(filepath.Join(dir, tb.entry.ID()+cache.RawSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if uint64(st.Size()) != end {
		t.Fatalf(".blob.raw has %d bytes, chunk data ends at %d (blob %d bytes)", st.Size(), end, tb.entry.CompressedSize)
	}
}
