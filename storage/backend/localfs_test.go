package backend

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLocalfs(t *testing.T) {
	dir, alt := t.TempDir(), t.TempDir()
	data := randomData(70_000)
	if err := os.WriteFile(filepath.Join(alt, "blobid"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"dir": dir, "alt_dirs": []string{alt}})
	b, err := New("localfs", raw)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	readBack(t, b, "blobid", data) // found in the alt dir
	if _, err := b.Open(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	// dir wins over alt_dirs.
	first := randomData(1000)
	if err := os.WriteFile(filepath.Join(dir, "blobid"), first, 0o644); err != nil {
		t.Fatal(err)
	}
	readBack(t, b, "blobid", first)
	// blob_file wins over everything, whatever the id.
	raw, _ = json.Marshal(map[string]any{"blob_file": filepath.Join(alt, "blobid"), "dir": dir})
	bf, err := New("localfs", raw)
	if err != nil {
		t.Fatal(err)
	}
	defer bf.Close()
	readBack(t, bf, "anything", data)
	if len(bf.(*Localfs).files) != 1 {
		t.Fatalf("%d open files for one blob opened repeatedly", len(bf.(*Localfs).files))
	}
	if _, err := New("oss", raw); err == nil {
		t.Fatal("unsupported backend type accepted")
	}
}
