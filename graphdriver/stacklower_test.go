package graphdriver

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

// TestStackLowerMergedDirLinks: a directory present in several layers
// reports one link, as kernel overlayfs reports a merged directory; one
// present in a single layer keeps that layer's count.
func TestStackLowerMergedDirLinks(t *testing.T) {
	top, bottom := t.TempDir(), t.TempDir()
	for _, d := range []string{filepath.Join(top, "both/a"), filepath.Join(bottom, "both/b"), filepath.Join(bottom, "both/c"),
		filepath.Join(bottom, "only/x"), filepath.Join(bottom, "only/y")} {
		testutil.Must(t, os.MkdirAll(d, 0o755))
	}
	root, err := newStackLower([]string{top, bottom}, nil)
	testutil.Must(t, err)
	ctx := context.Background()
	for name, want := range map[string]uint32{"both": 1, "only": 4} {
		l, err := root.Lookup(ctx, name)
		testutil.Must(t, err)
		st, err := l.Stat(ctx)
		testutil.Must(t, err)
		if st.Nlink != want {
			t.Errorf("%s: nlink %d, want %d", name, st.Nlink, want)
		}
	}
}
