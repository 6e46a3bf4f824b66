package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

// imageFixture is what mode 2 needs: the helper, nydusd and nydus-image
// built into bin, and an image of files (also written to lower, the
// directory kernel mode overlays) with a localfs nydusd config, as
// nydus-snapshotter passes them in extraoption.
type imageFixture struct {
	bin, root, snap, lower, boot string
	cfg                          []byte
}

func newImageFixture(t *testing.T, files map[string]string) *imageFixture {
	t.Helper()
	f := &imageFixture{bin: t.TempDir(), root: t.TempDir()}
	for pkg, name := range map[string]string{".": "nydus-overlayfs", "../nydusd": "nydusd", "../nydus-image": "nydus-image"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(f.bin, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v: %s", name, err, out)
		}
	}
	src := filepath.Join(f.root, "src")
	f.snap, f.lower = filepath.Join(f.root, "snap"), filepath.Join(f.root, "lower")
	for _, d := range []string{src, f.snap, f.lower} {
		testutil.Must(t, os.MkdirAll(d, 0o755))
	}
	for name, body := range files {
		testutil.Must(t, os.WriteFile(filepath.Join(src, name), []byte(body), 0o644))
		testutil.Must(t, os.WriteFile(filepath.Join(f.lower, name), []byte(body), 0o644))
	}
	f.boot = filepath.Join(f.snap, "image.boot")
	blobs := filepath.Join(f.root, "blobs")
	if out, err := exec.Command(filepath.Join(f.bin, "nydus-image"), "create", "--log-level", "warn", "--bootstrap", f.boot, "--blob-dir", blobs, src).CombinedOutput(); err != nil {
		t.Fatalf("nydus-image: %v: %s", err, out)
	}
	f.cfg, _ = json.Marshal(map[string]any{
		"device": map[string]any{"backend": map[string]any{"type": "localfs", "config": map[string]any{"dir": blobs}},
			"cache": map[string]any{"type": "blobcache", "config": map[string]any{"work_dir": filepath.Join(f.snap, "cache")}}},
		"mode": "direct", "digest_validate": true, "enable_xattr": true})
	return f
}

// extraOption is the base64 extraoption= value for bootstrap boot.
func (f *imageFixture) extraOption(boot string) string {
	b, _ := json.Marshal(map[string]string{"source": boot, "config": string(f.cfg), "snapshotdir": f.snap, "fs_version": "v6"})
	return base64.StdEncoding.EncodeToString(b)
}

// dirs makes and returns the named directories under the fixture's root.
func (f *imageFixture) dirs(t *testing.T, names ...string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		p := filepath.Join(f.root, n)
		testutil.Must(t, os.MkdirAll(p, 0o755))
		out = append(out, p)
	}
	return out
}
