package graphdriver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"
)

// deepHome returns a home directory whose path is about 200 bytes long:
// with absolute lower paths, 128 layers would need some 5 KiB of mount
// data, more than a page.
func deepHome(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("/tmp", "gddeep")
	testutil.Must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	return filepath.Join(base, strings.Repeat("long-docker-data-root-", 8), "nydus")
}

// buildDeepChain creates layers l000..l127, each adding its own file and
// its own line in a shared one, and returns their ids.
func buildDeepChain(t *testing.T, d *Driver, n int) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	parent := ""
	for i := range n {
		id := fmt.Sprintf("%064x", i+1) // as long as dockerd's ids
		testutil.Must(t, d.Create(id, parent, nil))
		if _, err := d.ApplyDiff(ctx, id, parent, tartest.Reader(t, tartest.Dir("layers/"), tartest.File(fmt.Sprintf("layers/%03d", i), fmt.Sprint("layer ", i)), tartest.File("top", fmt.Sprint(i)))); err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		ids = append(ids, id)
		parent = id
	}
	return ids
}

// checkDeepRoot reads every layer's file through root.
func checkDeepRoot(t *testing.T, root string, n int) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "layers"))
	testutil.Must(t, err)
	if len(ents) != n {
		t.Fatalf("merged /layers has %d entries, want %d", len(ents), n)
	}
	for i := range n {
		b, err := os.ReadFile(filepath.Join(root, "layers", fmt.Sprintf("%03d", i)))
		if err != nil || string(b) != fmt.Sprint("layer ", i) {
			t.Fatalf("layer %d's file through the merged root: %q, %v", i, b, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "top")); err != nil || string(b) != fmt.Sprint(n-1) {
		t.Fatalf("/top = %q, %v; want the top layer's %d", b, err, n-1)
	}
}

// TestDeepChain128 mounts a container layer over 128 image layers (the
// most overlay2 allows) under a long home, writes into it, and reads every
// layer's file back through the merged root; a 129th ancestor is refused.
func TestDeepChain128(t *testing.T) {
	requireMounts(t)
	home := deepHome(t)
	d, err := New()
	testutil.Must(t, err)
	testutil.Must(t, d.Init(home, nil, nil, nil))
	defer d.Cleanup()
	ids := buildDeepChain(t, d, maxDepth)
	rw := strings.Repeat("c", 64)
	testutil.Must(t, d.CreateReadWrite(rw, ids[len(ids)-1], nil))
	root, err := d.Get(rw, "")
	testutil.Must(t, err)
	if typ, _ := mountedAt(root); typ != "overlay" {
		t.Fatalf("container root %s is %q, want overlay", root, typ)
	}
	checkDeepRoot(t, root, maxDepth)
	testutil.Must(t, os.WriteFile(filepath.Join(root, "layers", "new"), []byte("rw"), 0o644))
	testutil.Must(t, d.Put(rw))
	if b, err := os.ReadFile(filepath.Join(home, rw, "diff", "layers", "new")); err != nil || string(b) != "rw" {
		t.Fatalf("write did not land in the upper dir: %q, %v", b, err)
	}
	// The read-only top image layer mounts too (128 lowers, no upper).
	top, err := d.Get(ids[len(ids)-1], "")
	testutil.Must(t, err)
	checkDeepRoot(t, top, maxDepth)
	testutil.Must(t, d.Put(ids[len(ids)-1]))

	if err := d.Create("too-deep", rw, nil); err == nil || !strings.Contains(err.Error(), "ancestors") {
		t.Fatalf("a layer with %d ancestors: err %v, want a refusal", maxDepth+1, err)
	}
}
