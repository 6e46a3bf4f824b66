package cache

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
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

// TestCrashWhileDiscardingData: a process killed while Open discards a
// data file of the wrong size never leaves chunks marked ready over the
// zeroed data, whichever point it dies at.
func TestCrashWhileDiscardingData(t *testing.T) {
	if dir := os.Getenv("CACHE_CRASH_DIR"); dir != "" {
		// The child: open over the wrong-sized file and die at the point.
		point := os.Getenv("CACHE_CRASH_POINT")
		kill := func(p string) {
			if p == point {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
		Open(dir, testEntry(4, 4096), func(c *config) error { c.crashAt = kill; return nil })
		t.Fatalf("survived crash point %s", point)
	}
	for _, point := range []string{"map-reset", "data-resized"} {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			e := testEntry(4, 4096)
			f, err := Open(dir, e)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Put(testChunk(1, 4096), bytes.Repeat([]byte{0xA5}, 4096)); err != nil {
				t.Fatal(err)
			}
			f.Close()
			// A data file of another size: its content is not to be trusted.
			if err := os.Truncate(filepath.Join(dir, e.ID()+DataSuffix), 3*4096); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWhileDiscardingData$", "-test.count=1")
			cmd.Env = append(os.Environ(), "CACHE_CRASH_DIR="+dir, "CACHE_CRASH_POINT="+point)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child did not die at %s: %v\n%s", point, err, out)
			}
			f, err = Open(dir, e)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if st := f.Stats(); st.Ready != 0 {
				t.Fatalf("after a crash at %s, %d chunks are ready over discarded data", point, st.Ready)
			}
			if b, ok, err := f.Get(testChunk(1, 4096), nil); ok || err != nil {
				t.Fatalf("after a crash at %s, chunk 1 is served: %x..., %v", point, b[:8], err)
			}
		})
	}
}

// TestCacheFilesPrivate: cache files are readable by their owner only.
func TestCacheFilesPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "work")
	e := testEntry(2, 4096)
	f, err := Open(dir, e)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, name := range append(f.Files(), ".") {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v: group and others can read the cache", name, st.Mode().Perm())
		}
	}
}

// TestTableBinding: files are bound to the chunk table that filled them.
// A second table naming the same blob id caches apart and sees none of
// the first's chunks; an unbound map's bits (set for a table nobody
// recorded) are dropped when a table binds it.
func TestTableBinding(t *testing.T) {
	dir := t.TempDir()
	e := testEntry(4, 4096)
	tA, tB := [32]byte{1}, [32]byte{2}
	put := func(table *[32]byte, idx uint32, fill byte) {
		t.Helper()
		opts := []Option{}
		if table != nil {
			opts = append(opts, WithTable(*table))
		}
		f, err := Open(dir, e, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Put(testChunk(idx, 4096), bytes.Repeat([]byte{fill}, 4096)); err != nil {
			t.Fatal(err)
		}
	}
	get := func(table [32]byte, idx uint32) ([]byte, bool) {
		t.Helper()
		f, err := Open(dir, e, WithTable(table))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b, ok, err := f.Get(testChunk(idx, 4096), nil)
		if err != nil {
			t.Fatal(err)
		}
		return b, ok
	}
	put(nil, 0, 0x11) // unbound, as upstream or an older nydusd leaves it
	if _, ok := get(tA, 0); ok {
		t.Fatal("a chunk of an unbound map was served to a bound table")
	}
	put(&tA, 1, 0xAA)
	if _, ok := get(tB, 1); ok {
		t.Fatal("table B was served table A's chunk")
	}
	put(&tB, 1, 0xBB)
	if b, ok := get(tB, 1); !ok || b[0] != 0xBB {
		t.Fatalf("table B's own chunk: %v %x", ok, b[:1])
	}
	if b, ok := get(tA, 1); !ok || b[0] != 0xAA {
		t.Fatalf("table A's chunk after B cached apart: %v %x", ok, b[:1])
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	if len(names) != 4 {
		t.Fatalf("cache files %v, want A's pair and B's pair", names)
	}
}
