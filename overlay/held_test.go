package overlay_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/overlay"
)

// TestDifferentialOneHeldDir runs the differential script holding a
// single upper directory descriptor: every other directory is opened
// again, from the nearest held one, whenever it is needed.
func TestDifferentialOneHeldDir(t *testing.T) { differential(t, "", false, overlay.WithHeldDirs(1)) }

// TestHeldDirsBounded walks 200 directories of the merged view, creating
// a file in each (which holds its upper directory), with at most 8
// descriptors held: the process must not gain more than that many open
// descriptors (and a few for files whose asynchronous RELEASE is still
// on its way), where unbounded it would gain 200.
func TestHeldDirsBounded(t *testing.T) {
	requireMount(t)
	const held = 8
	m := mountOurs(t, newLayers(t, t.TempDir()), overlay.WithHeldDirs(held))
	before := openFds(t)
	for i := range 200 {
		d := filepath.Join(m, fmt.Sprintf("d%03d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := openFds(t) - before; got > held+4 {
		t.Errorf("%d more descriptors open after touching 200 directories; at most %d may be held", got, held)
	}
	for i := range 200 {
		if b, err := os.ReadFile(filepath.Join(m, fmt.Sprintf("d%03d", i), "f")); err != nil || string(b) != "x" {
			t.Fatalf("d%03d/f: %q, %v", i, b, err)
		}
	}
}

func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestHeldDirsOption refuses a bound below one (and New any bad option).
func TestHeldDirsOption(t *testing.T) {
	l := newLayers(t, t.TempDir())
	lower, err := overlay.NewDirLower(l.lower)
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]overlay.Option{
		"WithHeldDirs(0)":  overlay.WithHeldDirs(0),
		"WithHeldDirs(-1)": overlay.WithHeldDirs(-1),
		"WithLogger(nil)":  overlay.WithLogger(nil),
	} {
		if f, err := overlay.New(lower, l.upper, l.work, o); err == nil {
			f.Close()
			t.Errorf("%s accepted", name)
		}
	}
}
