package overlay_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/overlay"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/export"
	"github.com/gonydus/nydus/rafs/rafstest"
)

// rafsLower builds a RAFS image of dir and returns it as a Lower.
func rafsLower(t testing.TB, dir string) overlay.Lower {
	t.Helper()
	return buildRAFS(t, dir).lower
}

// rafsImage is a RAFS image built from a directory.
type rafsImage struct {
	img   *rafs.Image
	src   *rafs.LocalBlobs
	lower overlay.Lower
}

func buildRAFS(t testing.TB, dir string) rafsImage {
	t.Helper()
	im := rafstest.Build(t, rafstest.Dir(dir))
	src := im.Blobs()
	return rafsImage{img: im.Image, src: src, lower: overlay.NewRAFSLower(im.Image, src)}
}

// mountEROFS exports im as an EROFS block image and mounts it with the
// kernel, read-only, until cleanup.
func mountEROFS(t *testing.T, im rafsImage) string {
	t.Helper()
	testutil.RequireKernelEROFS(t)
	p := filepath.Join(t.TempDir(), "image.erofs")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := export.Block(context.Background(), im.img, im.src, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dir := t.TempDir()
	if err := unix.Mount(p, dir, "erofs", unix.MS_RDONLY, ""); err != nil {
		testutil.Missing(t, "a kernel that mounts an EROFS image file directly (needs a loop device): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, 0) })
	return dir
}

// TestRAFSUpperOnKernelEROFS runs the script on ours over a RAFS image,
// then mounts the upper dir it wrote with kernel overlayfs over the kernel
// EROFS mount of the same image (the deployment nydus-snapshotter makes
// without the FUSE overlay), and the reverse: the merged trees match.
func TestRAFSUpperOnKernelEROFS(t *testing.T) {
	requireMount(t)
	im := buildRAFS(t, makeLower(t))
	erofs := mountEROFS(t, im)
	t.Run("ours then kernel", func(t *testing.T) {
		l := newLayers(t, erofs)
		var want map[string]string
		t.Run("ours", func(t *testing.T) {
			m := mountLower(t, im.lower, l)
			runScript(m)
			want = snapshot(t, m, false)
		})
		l.work = freshWork(t)
		diffTrees(t, "kernel over EROFS with our upper", want, snapshot(t, mountKernel(t, l, ""), false))
	})
	t.Run("kernel then ours", func(t *testing.T) {
		l := newLayers(t, erofs)
		var want map[string]string
		t.Run("kernel", func(t *testing.T) {
			m := mountKernel(t, l, "")
			runScript(m)
			want = snapshot(t, m, false)
		})
		l.work = freshWork(t)
		diffTrees(t, "ours over RAFS with the kernel's upper", want, snapshot(t, mountLower(t, im.lower, l), false))
	})
}

// TestDifferentialRAFS runs the script on kernel overlayfs over a
// directory and on ours over a RAFS image of the same directory.
func TestDifferentialRAFS(t *testing.T) {
	requireMount(t)
	lower := makeLower(t)
	kl := newLayers(t, lower)
	km := mountKernel(t, kl, "")
	kSteps, kMerged := runScript(km), snapshot(t, km, false)

	ol := newLayers(t, lower)
	om := mountLower(t, rafsLower(t, lower), ol)
	oSteps, oMerged := runScript(om), snapshot(t, om, false)
	for i := range kSteps {
		if kSteps[i] != oSteps[i] {
			t.Errorf("step %d:\n  kernel: %s\n  ours:   %s", i, kSteps[i], oSteps[i])
		}
	}
	diffTrees(t, "merged tree", kMerged, oMerged)
	diffTrees(t, "upper dir", snapshot(t, kl.upper, true), snapshot(t, ol.upper, true))
}
