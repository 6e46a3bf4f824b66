package fuseuring

import (
	"path/filepath"
	"testing"
)

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:           "/plain",
		`/a\040b`:          "/a b",
		`/tab\011and\134x`: "/tab\tand\\x",
		`/short\04`:        `/short\04`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConnOf finds the connection of a real mount, and none for a plain
// directory.
func TestConnOf(t *testing.T) {
	needURing(t)
	m := mount(t, &testTree{}, true)
	conn, err := ConnOf(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	if conn != m.tr.ConnID() {
		t.Fatalf("ConnOf %d, transport serves %d", conn, m.tr.ConnID())
	}
	if alive, err := ConnAlive(conn); err != nil || !alive {
		t.Fatalf("ConnAlive(%d) = %v, %v", conn, alive, err)
	}
	if _, err := ConnOf(filepath.Dir(m.dir)); err == nil {
		t.Fatalf("ConnOf found a FUSE mount at a plain directory")
	}
}
