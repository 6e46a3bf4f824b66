package storage_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
)

// TestSharedCacheNoPoisoning: two images name one blob id with different
// chunk tables and share a cache directory (as under nydus-snapshotter).
// The lying image's view of a chunk is cached where the honest image's
// chunk of the same index lives; the honest image must still read its
// own bytes, not the other's, with digest validation off.
func TestSharedCacheNoPoisoning(t *testing.T) {
	img, blobs, _, res := buildImage(t)
	tables, err := storage.ChunkTables(img)
	if err != nil {
		t.Fatal(err)
	}
	entry := &res.Blob.Entry
	honest := tables(entry)
	i, j := -1, -1
	for x := range honest {
		for y := range honest {
			if x != y && honest[x].UncompressedSize == honest[y].UncompressedSize && honest[x].Digest != honest[y].Digest {
				i, j = x, y
			}
		}
	}
	if i < 0 {
		t.Fatal("the test image has no two distinct chunks of one size")
	}
	// The liar's chunk i is the honest chunk j's stored bytes (they verify:
	// they are real), cached at the honest chunk i's place.
	liar := make([]*layout.ChunkInfo, len(honest))
	copy(liar, honest)
	lie := *honest[i]
	lie.CompressedOffset, lie.CompressedSize, lie.Digest, lie.Flags, lie.CRC32 = honest[j].CompressedOffset, honest[j].CompressedSize, honest[j].Digest, honest[j].Flags, honest[j].CRC32
	liar[i] = &lie

	ctx := context.Background()
	cacheDir := t.TempDir()
	source := func(table []*layout.ChunkInfo, opts ...storage.SourceOption) *storage.Source {
		opts = append(opts, storage.WithChunkTables(func(*layout.BlobEntry) []*layout.ChunkInfo { return table }))
		s, err := storage.NewSource(localOpen(t, blobs, map[string]*countingReader{}), opts...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	plain := source(honest)
	defer plain.Close()
	want, err := plain.ReadChunk(ctx, entry, honest[i])
	if err != nil {
		t.Fatal(err)
	}
	other, err := plain.ReadChunk(ctx, entry, honest[j])
	if err != nil || bytes.Equal(want, other) {
		t.Fatalf("chunks %d and %d: %v", i, j, err)
	}

	bad := source(liar, storage.WithCacheDir(cacheDir))
	if got, err := bad.ReadChunk(ctx, entry, liar[i]); err != nil || !bytes.Equal(got, other) {
		t.Fatalf("the lying image's chunk %d: %v", i, err)
	}
	bad.Close() // its chunks are on disk, marked ready

	good := source(honest, storage.WithCacheDir(cacheDir))
	defer good.Close()
	got, err := good.ReadChunk(ctx, entry, honest[i])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("chunk %d read through a cache shared with a lying image is its chunk %d: poisoned", i, j)
	}
	// And the other way round: the honest image's cache does not feed the liar.
	bad = source(liar, storage.WithCacheDir(cacheDir))
	defer bad.Close()
	if got, err := bad.ReadChunk(ctx, entry, liar[i]); err != nil || !bytes.Equal(got, other) {
		t.Fatalf("the lying image's chunk %d after the honest one cached: %v", i, err)
	}
}
