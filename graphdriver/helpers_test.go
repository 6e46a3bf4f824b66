package graphdriver

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

// requireMounts skips unless the test can mount overlayfs (root).
func requireMounts(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t, "mounts kernel overlayfs")
}

// newDriver returns an initialized driver homed in a short temp dir.
func newDriver(t *testing.T, opts ...Option) (*Driver, string) {
	t.Helper()
	home, err := os.MkdirTemp("/tmp", "gdt")
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))}, opts...)
	d, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Init(home, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Cleanup()
		if ms, _ := mountsUnder(home); len(ms) > 0 {
			t.Errorf("mounts left under %s: %v", home, ms)
			for _, m := range ms {
				unmountIfMounted(m.Point)
			}
		}
		os.RemoveAll(home)
	})
	return d, home
}

// treeOf lists root as "path type content" lines (content for files,
// target for symlinks).
func treeOf(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			lines = append(lines, rel+" f "+string(b))
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			lines = append(lines, rel+" l "+l)
		case fi.IsDir():
			lines = append(lines, rel+" d")
		default:
			lines = append(lines, rel+" "+fi.Mode().Type().String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// buildBinaries builds nydusd and nydus-image for tests that run them.
func buildBinaries(t *testing.T) (nydusd, image string) {
	t.Helper()
	out := t.TempDir()
	for _, c := range []string{"nydusd", "nydus-image"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(out, c), "../cmd/"+c)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", c, err, b)
		}
	}
	return filepath.Join(out, "nydusd"), filepath.Join(out, "nydus-image")
}

func osWriteFile(p string, b []byte) error { return os.WriteFile(p, b, 0o644) }
