package overlay_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestUpperFromOursOnKernel runs the script on our overlay, then mounts
// the upper dir it wrote with kernel overlayfs over the same lower tree:
// the merged trees must be the same.
func TestUpperFromOursOnKernel(t *testing.T) {
	requireMount(t)
	lower := makeLower(t)
	l := newLayers(t, lower)
	var want map[string]string
	t.Run("ours", func(t *testing.T) {
		m := mountOurs(t, l)
		runScript(m)
		want = snapshot(t, m, false)
	})
	k := l
	k.work = freshWork(t)
	got := snapshot(t, mountKernel(t, k, ""), false)
	diffTrees(t, "kernel over our upper", want, got)
}

// TestUpperFromKernelOnOurs is the reverse: an upper dir the kernel wrote,
// served by ours.
func TestUpperFromKernelOnOurs(t *testing.T) {
	requireMount(t)
	lower := makeLower(t)
	l := newLayers(t, lower)
	var want map[string]string
	t.Run("kernel", func(t *testing.T) {
		m := mountKernel(t, l, "")
		runScript(m)
		want = snapshot(t, m, false)
	})
	o := l
	o.work = freshWork(t)
	got := snapshot(t, mountOurs(t, o), false)
	diffTrees(t, "ours over kernel upper", want, got)
	// And ours keeps working on it: the script's second run fails the
	// same way on both.
}

func freshWork(t *testing.T) string {
	w := filepath.Join(t.TempDir(), "work2")
	if err := os.Mkdir(w, 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// TestContinueKernelUpper copies an upper dir the kernel wrote and goes on
// changing it with the kernel and with ours: steps, merged trees and upper
// dirs must match.
func TestContinueKernelUpper(t *testing.T) {
	requireMount(t)
	lower := makeLower(t)
	base := newLayers(t, lower)
	t.Run("kernel", func(t *testing.T) { runScript(mountKernel(t, base, "")) })
	k, o := newLayers(t, lower), newLayers(t, lower)
	for _, dst := range []string{k.upper, o.upper} {
		run(t, "cp", "-a", "-T", base.upper, dst)
	}
	var kSteps, oSteps []string
	var kMerged, oMerged map[string]string
	t.Run("kernel2", func(t *testing.T) {
		m := mountKernel(t, k, "")
		kSteps, kMerged = runSteps(m, script2()), snapshot(t, m, false)
	})
	t.Run("ours2", func(t *testing.T) {
		m := mountOurs(t, o)
		oSteps, oMerged = runSteps(m, script2()), snapshot(t, m, false)
	})
	for i := range kSteps {
		if kSteps[i] != oSteps[i] {
			t.Errorf("step %d:\n  kernel: %s\n  ours:   %s", i, kSteps[i], oSteps[i])
		}
	}
	diffTrees(t, "merged tree", kMerged, oMerged)
	diffTrees(t, "upper dir", snapshot(t, k.upper, true), snapshot(t, o.upper, true))
	if t.Failed() || testing.Verbose() {
		for _, s := range kSteps {
			t.Log(s)
		}
	}
}
