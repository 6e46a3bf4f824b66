package cache

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/rafs/layout"
)

func testEntry(chunks uint32, chunkSize uint64) *layout.BlobEntry {
	e := &layout.BlobEntry{ChunkCount: chunks, UncompressedSize: uint64(chunks) * chunkSize, CompressedSize: uint64(chunks) * chunkSize}
	e.SetID("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	return e
}

func testChunk(i uint32, size uint64) *layout.ChunkInfo {
	return &layout.ChunkInfo{Index: i, UncompressedOffset: uint64(i) * size, UncompressedSize: uint32(size), CompressedOffset: uint64(i) * size, CompressedSize: uint32(size)}
}

// TestSharedDirectory opens one work dir twice, as two daemons would, and
// checks that chunks one writes become visible to the other only once
// they are durable.
func TestSharedDirectory(t *testing.T) {
	dir := t.TempDir()
	e := testEntry(16, 4096)
	a, err := Open(dir, e)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(dir, e)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data := bytes.Repeat([]byte{7}, 4096)
	c := testChunk(5, 4096)
	if err := a.Put(c, data); err != nil {
		t.Fatal(err)
	}
	if !a.Ready(c) {
		t.Fatal("writer cannot read back its own pending chunk")
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	got, ok, err := b.Get(c, nil)
	if err != nil || !ok || !bytes.Equal(got, data) {
		t.Fatalf("other opener: ok=%v err=%v", ok, err)
	}
	if err := b.Invalidate(c); err != nil {
		t.Fatal(err)
	}
	if a.Ready(c) {
		t.Fatal("invalidation not visible to the other opener")
	}
}

func TestPutChecksExtents(t *testing.T) {
	f, err := Open(t.TempDir(), testEntry(4, 4096))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Put(testChunk(4, 4096), make([]byte, 4096)); err == nil {
		t.Fatal("chunk beyond the blob accepted")
	}
	if err := f.Put(testChunk(1, 4096), make([]byte, 100)); err == nil {
		t.Fatal("short chunk accepted")
	}
}

func TestSyncEveryPut(t *testing.T) {
	dir := t.TempDir()
	e := testEntry(4, 4096)
	f, err := Open(dir, e, WithSync(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Put(testChunk(2, 4096), make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	// Marked ready in the file itself, without Flush or Close.
	m, err := os.ReadFile(filepath.Join(dir, e.ID()+ChunkMapSuffix))
	if err != nil || m[HeaderSize] != 0x20 {
		t.Fatalf("bitmap %x %v", m[HeaderSize:], err)
	}
	f.Close()
}

func TestDataFileWithWrongSizeDropsMap(t *testing.T) {
	dir := t.TempDir()
	e := testEntry(4, 4096)
	f, err := Open(dir, e)
	if err != nil {
		t.Fatal(err)
	}
	f.Put(testChunk(0, 4096), make([]byte, 4096))
	f.Close()
	if err := os.Truncate(filepath.Join(dir, e.ID()+DataSuffix), 100); err != nil {
		t.Fatal(err)
	}
	f, err = Open(dir, e)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st := f.Stats(); st.Ready != 0 {
		t.Fatalf("chunks still ready over a resized data file: %+v", st)
	}
}
