package graphdriver

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"
)

// TestHomeWithColon: a managed plugin's home holds the plugin reference
// (name:tag); overlay mount data must escape it.
func TestHomeWithColon(t *testing.T) {
	requireMounts(t)
	d, err := New()
	testutil.Must(t, err)
	home := filepath.Join(t.TempDir(), "gonydus", "nydus:dev,x")
	testutil.Must(t, d.Init(home, nil, nil, nil))
	defer d.Cleanup()
	testutil.Must(t, d.Create("base", "", nil))
	if _, err := d.ApplyDiff(context.Background(), "base", "", tartest.Reader(t, tartest.File("f", "data"))); err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, d.CreateReadWrite("rw", "base", nil))
	root, err := d.Get("rw", "")
	testutil.Must(t, err)
	defer d.Put("rw")
	if b, err := os.ReadFile(filepath.Join(root, "f")); err != nil || string(b) != "data" {
		t.Fatalf("read through the overlay: %q, %v", b, err)
	}
}
