package overlay_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/gonydus/nydus/overlay"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
)

// rafsLower builds a RAFS image of dir and returns it as a Lower.
func rafsLower(t testing.TB, dir string) overlay.Lower {
	t.Helper()
	var blob bytes.Buffer
	res, err := builder.Build(context.Background(), func(ctx context.Context, w builder.FileWriter) (*tree.Tree, error) {
		return source.FromDir(ctx, dir, w)
	}, &blob, builder.DefaultConfig())
	if err != nil {
		t.Fatalf("build image: %v", err)
	}
	img, err := rafs.Open(bytes.NewReader(res.Bootstrap), int64(len(res.Bootstrap)))
	if err != nil {
		t.Fatalf("open image: %v", err)
	}
	src := rafs.NewLocalBlobs("", map[string]io.ReaderAt{res.Blob.Entry.ID(): bytes.NewReader(blob.Bytes())})
	return overlay.NewRAFSLower(img, src)
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
