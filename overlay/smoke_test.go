package overlay_test

import (
	"os"
	"path/filepath"
	"testing"
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
