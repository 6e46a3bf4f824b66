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
