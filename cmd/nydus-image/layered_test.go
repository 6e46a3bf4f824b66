package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

func outputBlobs(t *testing.T, path string) []string {
	t.Helper()
	var o struct {
		Blobs []string `json:"blobs"`
	}
	b, err := os.ReadFile(path)
	testutil.Must(t, err)
	testutil.Must(t, json.Unmarshal(b, &o))
	return o.Blobs
}

// TestChunkDictAndParent builds a second image against a chunk dictionary
// (the first image) and as a layer on a parent bootstrap: shared data is
// referenced, not stored again, and both unpack to their sources.
func TestChunkDictAndParent(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	makeTree(t, base, treeOpts{})
	out := t.TempDir()
	nydusImage(t, "create", "--log-level", "warn", "--bootstrap", filepath.Join(out, "base.boot"), "--blob-dir", out,
		"--output-json", filepath.Join(out, "base.json"), base)
	baseBlobs := outputBlobs(t, filepath.Join(out, "base.json"))

	// Same tree plus one new file: with the dictionary only the new file's
	// chunk goes into the new blob.
	next := t.TempDir()
	makeTree(t, next, treeOpts{})
	testutil.Must(t, os.WriteFile(filepath.Join(next, "new.txt"), []byte("only in the second image\n"), 0o644))
	want := snapshotDir(t, next, noSocket)
	nydusImage(t, "create", "--log-level", "warn", "--bootstrap", filepath.Join(out, "next.boot"), "--blob-dir", out,
		"--chunk-dict", "bootstrap="+filepath.Join(out, "base.boot"), "--output-json", filepath.Join(out, "next.json"), next)
	blobs := outputBlobs(t, filepath.Join(out, "next.json"))
	if len(blobs) != 2 || blobs[0] != baseBlobs[0] && blobs[1] != baseBlobs[0] {
		t.Fatalf("image blobs %v should reference the dictionary blob %v", blobs, baseBlobs)
	}
	var newBlob string
	for _, b := range blobs {
		if b != baseBlobs[0] {
			newBlob = b
		}
	}
	baseSt, err := os.Stat(filepath.Join(out, baseBlobs[0]))
	testutil.Must(t, err)
	newSt, err := os.Stat(filepath.Join(out, newBlob))
	testutil.Must(t, err)
	t.Logf("dictionary blob %d bytes, new blob %d bytes", baseSt.Size(), newSt.Size())
	if newSt.Size()*20 > baseSt.Size() {
		t.Fatalf("new blob of %d bytes re-stores data of the %d-byte dictionary blob", newSt.Size(), baseSt.Size())
	}
	compareSnapshots(t, want, unpackSnapshot(t, filepath.Join(out, "next.boot"), out))

	// A layer on a parent bootstrap: the result is the merged view.
	layer := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(layer, "layer.txt"), []byte("layer\n"), 0o600))
	testutil.Must(t, os.WriteFile(filepath.Join(layer, ".wh.small.txt"), nil, 0o644))
	nydusImage(t, "create", "--log-level", "warn", "--bootstrap", filepath.Join(out, "layered.boot"), "--blob-dir", out,
		"--parent-bootstrap", filepath.Join(out, "base.boot"), layer)
	got := unpackSnapshot(t, filepath.Join(out, "layered.boot"), out)
	if _, ok := got["layer.txt"]; !ok {
		t.Fatal("layer file missing from the layered image")
	}
	if _, ok := got["small.txt"]; ok {
		t.Fatal("whiteout in the layer did not hide small.txt of the parent")
	}
	if _, ok := got["text/large.txt"]; !ok {
		t.Fatal("parent file missing from the layered image")
	}
}
