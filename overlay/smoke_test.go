package overlay_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/overlay"
)

func TestSmoke(t *testing.T) {
	requireMount(t)
	lower := t.TempDir()
	os.MkdirAll(filepath.Join(lower, "d/e"), 0o755)
	os.WriteFile(filepath.Join(lower, "d/f"), []byte("lower"), 0o644)
	l := newLayers(t, lower)
	mnt := mountOurs(t, l)
	b, err := os.ReadFile(filepath.Join(mnt, "d/f"))
	if err != nil || string(b) != "lower" {
		t.Fatalf("read: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "d/f"), []byte("upper"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err = os.ReadFile(filepath.Join(l.upper, "d/f"))
	if err != nil || string(b) != "upper" {
		t.Fatalf("upper: %q %v", b, err)
	}
	if err := os.Remove(filepath.Join(mnt, "d/e")); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Join(mnt, "d"))
	if len(ents) != 1 {
		t.Fatalf("entries %v", ents)
	}
}

// TestDirsChecked refuses nested, foreign and busy upper and work dirs.
func TestDirsChecked(t *testing.T) {
	lower, err := overlay.NewDirLower(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	up, work := filepath.Join(d, "up"), filepath.Join(d, "work")
	for _, p := range []string{up, work, filepath.Join(up, "w")} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := overlay.New(lower, up, filepath.Join(up, "w")); err == nil {
		t.Error("work dir inside the upper dir accepted")
	}
	var a, b unix.Stat_t
	if unix.Stat(d, &a) == nil && unix.Stat("/dev/shm", &b) == nil && a.Dev != b.Dev {
		if _, err := overlay.New(lower, up, "/dev/shm"); err == nil {
			t.Error("work dir on another file system accepted")
		}
	}
	f, err := overlay.New(lower, up, work)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := overlay.New(lower, up, work); err == nil {
		t.Error("dirs in use accepted twice")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = overlay.New(lower, up, work)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	f.Close()
}
