package cache

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestChunkMapBitsAndPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.blob.data.chunk_map")
	m, rebuilt, err := OpenChunkMap(path, 20)
	if err != nil || rebuilt {
		t.Fatal(err, rebuilt)
	}
	for _, i := range []uint32{0, 7, 8, 19} {
		if err := m.SetReady(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.SetReady(20); err == nil {
		t.Fatal("out-of-range chunk accepted")
	}
	if m.Ready() != 4 || !m.IsReady(7) || m.IsReady(6) {
		t.Fatalf("ready %d", m.Ready())
	}
	m.Clear(7)
	m.Close()
	b, _ := os.ReadFile(path)
	if len(b) != HeaderSize+3 || b[HeaderSize] != 0x80 || b[HeaderSize+1] != 0x80 || b[HeaderSize+2] != 0x10 {
		t.Fatalf("bitmap % x", b[HeaderSize:])
	}
	m, _, err = OpenChunkMap(path, 20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Ready() != 3 || !m.IsReady(19) || m.IsReady(7) {
		t.Fatal("state not persisted")
	}
}

func TestChunkMapConcurrentSetCompletes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m")
	const n = 1000
	a, _, err := OpenChunkMap(path, n)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := OpenChunkMap(path, n) // a second mapping, as another process would have
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		m := a
		if w%2 == 1 {
			m = b
		}
		wg.Go(func() {
			for i := uint32(w); i < n; i += 8 {
				m.SetReady(i)
			}
		})
	}
	wg.Wait()
	if a.Ready() != n || b.Ready() != n {
		t.Fatalf("lost updates: %d / %d of %d", a.Ready(), b.Ready(), n)
	}
	a.Close()
	b.Close()
	m, _, err := OpenChunkMap(path, n)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Ready() != n || !m.Complete() {
		t.Fatalf("%d ready after reopen, complete %v", m.Ready(), m.Complete())
	}
}

func TestChunkMapInMemory(t *testing.T) {
	m, _, err := OpenChunkMap("", 9)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.SetReady(8)
	if !m.IsReady(8) || m.Ready() != 1 {
		t.Fatal("in-memory map lost a bit")
	}
}

func TestChunkMapHalfCreatedIsReinitialised(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m")
	os.WriteFile(path, make([]byte, MapSize(5)), 0o644) // creator died before the header
	m, rebuilt, err := OpenChunkMap(path, 5)
	if err != nil || rebuilt {
		t.Fatal(err, rebuilt)
	}
	m.Close()
	b, _ := os.ReadFile(path)
	if _, err := ParseHeader(b); err != nil {
		t.Fatal(err)
	}
}

// FuzzOpenChunkMap opens arbitrary chunk_map file contents: the result is
// either a valid map of the right size (kept or rebuilt) or an error, and
// a kept map reports exactly the bits the file holds.
func FuzzOpenChunkMap(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed")
	m, _, err := OpenChunkMap(seed, 20)
	if err != nil {
		f.Fatal(err)
	}
	m.SetReady(3)
	m.SetReady(17)
	m.Close()
	seedData, _ := os.ReadFile(seed)
	f.Add(seedData, uint16(20))
	f.Add(seedData, uint16(21))
	f.Add(seedData[:HeaderSize], uint16(0))
	f.Add([]byte{}, uint16(5))
	f.Fuzz(func(t *testing.T, content []byte, count uint16) {
		path := filepath.Join(t.TempDir(), "m")
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		m, rebuilt, err := OpenChunkMap(path, uint32(count))
		if err != nil {
			return
		}
		defer m.Close()
		st, err := os.Stat(path)
		if err != nil || st.Size() != MapSize(uint32(count)) {
			t.Fatalf("map file of %d bytes for %d chunks", st.Size(), count)
		}
		n := uint32(0)
		for i := range uint32(count) {
			if m.IsReady(i) {
				n++
			}
		}
		if n != m.Ready() {
			t.Fatalf("IsReady counts %d, Ready %d", n, m.Ready())
		}
		if rebuilt && n != 0 {
			t.Fatalf("rebuilt map has %d ready chunks", n)
		}
	})
}
