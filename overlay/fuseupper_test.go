package overlay_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
)

// TestUpperOnFUSEWithoutRenameFlags runs the script with ours' upper and
// work dirs on bindfs, a FUSE passthrough file system that answers EINVAL
// to every renameat2 flag (kernel overlayfs refuses it as upper dir for
// lacking RENAME_WHITEOUT, which is where the graphdriver's auto mode
// falls back to ours): steps, merged tree and upper dir must be those of
// kernel overlayfs on ordinary dirs.
func TestUpperOnFUSEWithoutRenameFlags(t *testing.T) {
	requireMount(t)
	dir := testutil.MountBindfs(t, t.TempDir())
	testutil.Must(t, os.WriteFile(filepath.Join(dir, "a"), nil, 0o644))
	if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(dir, "a"), unix.AT_FDCWD, filepath.Join(dir, "b"), unix.RENAME_NOREPLACE); !errors.Is(err, unix.EINVAL) {
		t.Fatalf("bindfs took RENAME_NOREPLACE (%v): this test no longer covers an upper without renameat2 flags; use another FUSE file system", err)
	}
	testutil.Must(t, os.Remove(filepath.Join(dir, "a")))

	lower := makeLower(t)
	kl := newLayers(t, lower)
	km := mountKernel(t, kl, "")
	kSteps, kMerged := runScript(km), snapshot(t, km, false)

	ol := newLayersIn(t, dir, lower)
	om := mountOurs(t, ol)
	oSteps := runScript(om)
	for i := range kSteps {
		if kSteps[i] != oSteps[i] && !strings.HasPrefix(kSteps[i], "O_TMPFILE and linkat:") && !strings.HasPrefix(kSteps[i], "readdir merged:") {
			t.Errorf("step %d:\n  kernel: %s\n  ours on bindfs: %s", i, kSteps[i], oSteps[i])
		}
	}
	oMerged := snapshot(t, om, false)
	kUpper, oUpper := snapshot(t, kl.upper, true), snapshot(t, ol.upper, true)
	// Left out of the comparison, as bindfs itself does them: it has no
	// O_TMPFILE (so no a/fromtmp, and "readdir merged" lacks it), and
	// utimensat(UTIME_OMIT, UTIME_NOW) on it returns 0 but leaves the mtime
	// (v/v1/k; the same call straight on a bindfs mount does so too).
	for _, p := range []string{"a/fromtmp", "v/v1/k"} {
		t.Logf("not compared: %s: kernel %q, ours on bindfs %q", p, kMerged[p], oMerged[p])
		delete(kMerged, p)
		delete(oMerged, p)
		delete(kUpper, p)
		delete(oUpper, p)
	}
	diffTrees(t, "merged tree", kMerged, oMerged)
	diffTrees(t, "upper dir", kUpper, oUpper)
}
