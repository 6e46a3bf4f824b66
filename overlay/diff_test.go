package overlay_test

import (
	"fmt"
	"testing"

	"github.com/gonydus/nydus/overlay"
)

// runScript runs the script at mnt and returns one line per step.
func runScript(m string) []string { return runSteps(m, script()) }

func runSteps(m string, steps []step) []string {
	var out []string
	for _, s := range steps {
		res, err := s.fn(m)
		out = append(out, fmt.Sprintf("%s: %s %q", s.name, errnoName(err), res))
	}
	return out
}

// TestDifferential runs one script on kernel overlayfs and on ours over
// the same lower tree and compares every step's errno and result, the
// merged trees and the upper directories.
func TestDifferential(t *testing.T) { differential(t, "", false) }

// TestDifferentialURing runs the script with ours served over FUSE io_uring
// queues, as nydusd serves it when the kernel offers io_uring.
func TestDifferentialURing(t *testing.T) {
	needURing(t)
	differential(t, "", true)
}

// TestDifferentialUserXattr does the same with user.overlay.* xattrs
// (the kernel's userxattr option, our WithUserXattr).
func TestDifferentialUserXattr(t *testing.T) {
	differential(t, ",userxattr", false, overlay.WithUserXattr())
}

func differential(t *testing.T, kernelOpts string, uring bool, opts ...overlay.Option) {
	requireMount(t)
	lower := makeLower(t)
	kl := newLayers(t, lower)
	km := mountKernel(t, kl, kernelOpts)
	kSteps := runScript(km)
	kMerged := snapshot(t, km, false)

	ol := newLayers(t, lower)
	lowerFS, err := overlay.NewDirLower(ol.lower)
	if err != nil {
		t.Fatal(err)
	}
	om, unmount := serveOver(t, uring, lowerFS, ol, opts...)
	t.Cleanup(unmount)
	oSteps := runScript(om)
	oMerged := snapshot(t, om, false)

	for i := range kSteps {
		if kSteps[i] != oSteps[i] {
			t.Errorf("step %d:\n  kernel: %s\n  ours:   %s", i, kSteps[i], oSteps[i])
		}
	}
	diffTrees(t, "merged tree", kMerged, oMerged)
	diffTrees(t, "upper dir", snapshot(t, kl.upper, true), snapshot(t, ol.upper, true))
	if t.Failed() || testing.Verbose() {
		for i := range kSteps {
			t.Logf("%s", kSteps[i])
		}
	}
}
