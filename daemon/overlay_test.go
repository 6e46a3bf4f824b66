package daemon_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/internal/testutil"
)

// overlayConfig is localConfig plus an overlay section.
func overlayConfig(t *testing.T, im *image, upper, work string) *config.Config {
	t.Helper()
	doc := strings.TrimSuffix(localConfig(t, im.blobDir, t.TempDir(), true), "}") +
		`,"overlay":{"upper_dir":"` + upper + `","work_dir":"` + work + `"}}`
	cfg, err := config.Parse([]byte(doc))
	testutil.Must(t, err)
	return cfg
}

// TestWritableOverlay: with an overlay section and Writable, the root
// image is served read-write and changes land in the upper dir as kernel
// overlayfs would write them; without Writable the same mount is
// read-only; a pseudo-mount cannot carry an overlay.
func TestWritableOverlay(t *testing.T) {
	testutil.RequireFUSE(t)
	dir := t.TempDir()
	im := buildImage(t, dir, "ovl", 3)
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	testutil.Must(t, os.Mkdir(upper, 0o755))
	testutil.Must(t, os.Mkdir(work, 0o755))

	mnt := filepath.Join(dir, "mnt")
	testutil.Must(t, os.Mkdir(mnt, 0o755))
	d := daemon.New(daemon.Options{Writable: true})
	testutil.Must(t, d.AddMount("/", im.boot, overlayConfig(t, im, upper, work)))
	testutil.Must(t, d.Start(mnt, nil, 2))
	testutil.Must(t, os.WriteFile(filepath.Join(mnt, "new"), []byte("fresh"), 0o644))
	f, err := os.OpenFile(filepath.Join(mnt, "f01"), os.O_APPEND|os.O_WRONLY, 0)
	testutil.Must(t, err)
	_, err = f.WriteString("tail")
	testutil.Must(t, err)
	testutil.Must(t, f.Close())
	testutil.Must(t, os.Remove(filepath.Join(mnt, "f02")))
	if b, err := os.ReadFile(filepath.Join(mnt, "f00")); err != nil || string(b) != string(im.files["f00"]) {
		t.Fatalf("lower file through the overlay: %v", err)
	}
	testutil.Must(t, d.Stop())

	if b, _ := os.ReadFile(filepath.Join(upper, "new")); string(b) != "fresh" {
		t.Fatalf("upper/new = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(upper, "f01")); string(b) != string(im.files["f01"])+"tail" {
		t.Fatalf("upper/f01 is not the copied-up, appended file (%d bytes)", len(b))
	}
	var st syscall.Stat_t
	testutil.Must(t, syscall.Lstat(filepath.Join(upper, "f02"), &st))
	if st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("upper/f02 is not a 0/0 whiteout: mode %o rdev %d", st.Mode, st.Rdev)
	}

	// Read-only: the same upper dir is merged, writes fail with EROFS.
	ro := daemon.New(daemon.Options{})
	testutil.Must(t, ro.AddMount("/", im.boot, overlayConfig(t, im, upper, work)))
	testutil.Must(t, ro.Start(mnt, nil, 2))
	if b, err := os.ReadFile(filepath.Join(mnt, "new")); err != nil || string(b) != "fresh" {
		t.Fatalf("read-only overlay: new = %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "f02")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("whiteout not honoured: %v", err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "x"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write without Writable: %v, want EROFS", err)
	}
	testutil.Must(t, ro.Stop())

	pseudo := daemon.New(daemon.Options{})
	if err := pseudo.AddMount("/sub", im.boot, overlayConfig(t, im, upper, work)); !errors.Is(err, daemon.ErrUnsupported) {
		t.Fatalf("overlay on a pseudo-mount: %v", err)
	}
}
