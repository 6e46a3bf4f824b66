package graphdriver

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

// bindfsHome returns a driver home on a bindfs mount (see
// testutil.MountBindfs: a FUSE upper kernel overlayfs refuses) that goes
// with the test.
func bindfsHome(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("/tmp", "gdfh")
	testutil.Must(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	return filepath.Join(testutil.MountBindfs(t, base), "nydus")
}

// TestContainerLayerAutoFUSEHome: with the home on a FUSE file system
// kernel overlayfs refuses as upper dir, kernel mode fails and auto mode
// serves the container layer from the userspace overlay; on an ordinary
// home auto mode mounts kernel overlayfs. The same work (deletions,
// opaque dirs, renames, hard links) gives the same tree, Changes and Diff
// in both.
func TestContainerLayerAutoFUSEHome(t *testing.T) {
	requireFUSE(t)
	plugin := buildPlugin(t)
	home := bindfsHome(t)

	// The -init layer is written through Get as dockerd does, so the
	// image is made in auto mode; kernel mode then meets the refusal.
	a, err := New(modeOpts(plugin, ContainerLayerAuto)...)
	testutil.Must(t, err)
	testutil.Must(t, a.Init(home, nil, nil, nil))
	t.Cleanup(func() { a.Cleanup() })
	imageWithInit(t, a)
	k, err := New(modeOpts(plugin, ContainerLayerKernel)...)
	testutil.Must(t, err)
	testutil.Must(t, k.Init(home, nil, nil, nil))
	if _, err := k.Get("rw", ""); err == nil {
		k.Put("rw")
		t.Fatal("kernel mode mounted overlayfs with its upper dir on bindfs: this kernel takes a FUSE upper without RENAME_WHITEOUT, so auto has nothing to fall back from here")
	} else {
		t.Logf("kernel mode on bindfs refused: %v", err)
	}

	fuseTree := workInRoot(t, a, "fuse.nydus-overlay")
	fuseChanges, fuseDiff := changesListing(t, a, "rw", "init"), diffListing(t, a, "rw", "init")

	o, _ := newDriver(t, modeOpts(plugin, ContainerLayerAuto)...)
	imageWithInit(t, o)
	tree := workInRoot(t, o, "overlay")
	if tree != fuseTree {
		t.Errorf("merged trees differ:\nkernel overlayfs:\n%s\nuserspace on bindfs:\n%s", tree, fuseTree)
	}
	if want := changesListing(t, o, "rw", "init"); want != fuseChanges || want == "" {
		t.Errorf("Changes differ:\nkernel overlayfs:\n%s\nuserspace on bindfs:\n%s", want, fuseChanges)
	}
	if want := diffListing(t, o, "rw", "init"); want != fuseDiff || want == "" {
		t.Errorf("Diff differs:\nkernel overlayfs:\n%s\nuserspace on bindfs:\n%s", want, fuseDiff)
	}
	// The upper dir on bindfs holds what kernel overlayfs would read: a
	// whiteout device for the deleted file.
	var st syscall.Stat_t
	testutil.Must(t, syscall.Lstat(filepath.Join(home, "rw", "diff", "etc", "gone"), &st))
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/gone in the upper dir on bindfs: mode %o rdev %d, want a 0/0 whiteout", st.Mode, st.Rdev)
	}
}

// workInRoot mounts layer rw of d, checks that its root is a wantType
// mount, does containerWork there and returns the merged tree.
func workInRoot(t *testing.T, d *Driver, wantType string) string {
	t.Helper()
	root, err := d.Get("rw", "")
	testutil.Must(t, err)
	if typ, _ := mountedAt(root); typ != wantType {
		d.Put("rw")
		t.Fatalf("auto mode: the container root is %q, want %s", typ, wantType)
	}
	containerWork(t, root)
	tree := treeOf(t, root)
	testutil.Must(t, d.Put("rw"))
	return tree
}
