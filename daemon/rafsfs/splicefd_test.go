package rafsfs

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestCacheRangeSurvivesClose: a READ answered from a cache file keeps
// reading that file after the cache closed it and its descriptor number
// was reused by another file (go-fuse writes the reply after the handler
// returns), and gives its descriptor back once the reply is written.
func TestCacheRangeSurvivesClose(t *testing.T) {
	dir := t.TempDir()
	cached := bytes.Repeat([]byte("cached "), 1000)
	other := bytes.Repeat([]byte("OTHER! "), 1000)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "cache"), cached, 0o600))
	must(os.WriteFile(filepath.Join(dir, "other"), other, 0o600))
	before := openFDs(t)
	f, err := os.Open(filepath.Join(dir, "cache"))
	must(err)
	rr, err := newCacheRange(f, 7, 700)
	must(err)
	fd := f.Fd()
	f.Close() // an unmount closes the cache file
	g, err := os.Open(filepath.Join(dir, "other"))
	must(err)
	defer g.Close()
	t.Logf("cache fd %d, reused as %d", fd, g.Fd())
	got, st := rr.Bytes(make([]byte, 700))
	if !st.Ok() || !bytes.Equal(got, cached[7:707]) {
		t.Fatalf("after the cache file was closed the reply read %q...", got[:min(len(got), 14)])
	}
	if sfd, off, sz := rr.Seekable(); off != 7 || sz != 700 || sfd == g.Fd() {
		t.Fatalf("Seekable() = %d, %d, %d (the other file is %d)", sfd, off, sz, g.Fd())
	}
	rr.Done()
	rr.Done()                           // idempotent
	if n := openFDs(t); n != before+1 { // g
		t.Fatalf("%d descriptors open after Done, want %d", n, before+1)
	}
	// A closed file gives no range.
	if _, err := newCacheRange(f, 0, 1); err == nil {
		t.Fatal("a range of a closed file")
	}
}
