package convert

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	dconfig "github.com/gonydus/nydus/daemon/config"
)

var fuzzUpstreamTar = testutil.TestdataPath("upstream-nydus", "tar")

// FuzzReadBootstrapLayer reads fuzzed bootstrap layers (gzip or plain tar),
// seeded with layers packBootstrap writes. Nothing may panic or allocate
// past the layer's limits; a layer that reads packs again to a layer that
// reads back to the same bootstrap and backend file.
func FuzzReadBootstrapLayer(f *testing.F) {
	backend := &BackendFile{Type: "registry", Config: dconfig.ImageRegistry{Scheme: "https", Host: "r.example.com", Repo: "a/b"}}
	for _, be := range []*BackendFile{nil, backend} {
		l, err := packBootstrap([]byte("bootstrap bytes"), be)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(l.data)
		zr, _ := gzip.NewReader(bytes.NewReader(l.data))
		var plain bytes.Buffer
		plain.ReadFrom(zr)
		f.Add(plain.Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64<<10 {
			return // cap the input (a gzip of 64 KiB expands to at most about 64 MiB)
		}
		got, err := readBootstrapLayer(bytes.NewReader(b))
		if err != nil {
			return
		}
		if !strings.HasPrefix(got.diffID.String(), "sha256:") {
			t.Fatalf("diff id %q", got.diffID)
		}
		l, err := packBootstrap(got.boot, got.backend)
		if err != nil {
			t.Fatalf("an accepted layer does not pack again: %v", err)
		}
		again, err := readBootstrapLayer(bytes.NewReader(l.data))
		if err != nil {
			t.Fatalf("a packed layer does not read: %v", err)
		}
		if !bytes.Equal(again.boot, got.boot) || (again.backend == nil) != (got.backend == nil) ||
			(got.backend != nil && *again.backend != *got.backend) || again.diffID != l.diffID {
			t.Fatal("bootstrap layer changed in a round trip")
		}
	})
}

// FuzzRewriteConfig rewrites fuzzed image configs as the converter does for
// the target image: no panic, and an accepted config comes out as a JSON
// object with the new diff ids, the source's other fields and a history
// that ends with the bootstrap's entry.
func FuzzRewriteConfig(f *testing.F) {
	f.Add([]byte(`{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"history":[{"created_by":"x"}]}`), true)
	f.Add([]byte(`{"os":"linux","history":null}`), false)
	ids := []digest.Digest{digest.FromString("layer"), digest.FromString("bootstrap")}
	f.Fuzz(func(t *testing.T, raw []byte, onlyBootstrap bool) {
		out, err := rewriteConfig(raw, ids, onlyBootstrap)
		if err != nil {
			return
		}
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(out, &cfg); err != nil || cfg == nil {
			t.Fatalf("rewritten config %q is not a JSON object: %v", out, err)
		}
		var src map[string]json.RawMessage
		_ = json.Unmarshal(raw, &src)
		for k := range src {
			if _, ok := cfg[k]; !ok {
				t.Fatalf("field %q lost", k)
			}
		}
		var rootfs struct {
			DiffIDs []digest.Digest `json:"diff_ids"`
		}
		if err := json.Unmarshal(cfg["rootfs"], &rootfs); err != nil || len(rootfs.DiffIDs) != 2 || rootfs.DiffIDs[1] != ids[1] {
			t.Fatalf("rootfs %s", cfg["rootfs"])
		}
		var history []map[string]any
		if err := json.Unmarshal(cfg["history"], &history); err != nil || len(history) == 0 || history[len(history)-1]["created_by"] != bootstrapHistoryCreatedBy {
			t.Fatalf("history %s", cfg["history"])
		}
	})
}

// FuzzFlatten applies fuzzed layer tars (plain, gzip or zstd; seeded with
// upstream's all-entry-type tars and a layer with whiteouts) to a flattened
// tree twice, as check does for an image's layers. No panic; the result
// holds the root, every path's parent is a directory in it, and no
// whiteout marker survives.
func FuzzFlatten(f *testing.F) {
	for _, name := range []string{"all-entry-type.tar", "all-entry-type-macos.tar"} {
		if b, err := os.ReadFile(filepath.Join(fuzzUpstreamTar, name)); err == nil {
			f.Add(b)
		}
	}
	f.Add(tartest.Tar(f, tartest.Dir("a/"), tartest.Opaque("a"), tartest.File("a/f", "x"), tartest.Whiteout("b"),
		tartest.Symlink("b/c", "../a/f"), tartest.Hardlink("h", "a/f")))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 64<<10 {
			return
		}
		ft := newFlatTree()
		for range 2 {
			if err := ft.applyLayer(bytes.NewReader(b)); err != nil {
				return
			}
		}
		if n := ft["/"]; n == nil || n.mode&unix.S_IFMT != unix.S_IFDIR {
			t.Fatal("the root is gone or not a directory")
		}
		for p := range ft {
			if p == "/" {
				continue
			}
			if p != path.Clean(p) || !path.IsAbs(p) {
				t.Fatalf("path %q is not clean", p)
			}
			if strings.HasPrefix(path.Base(p), ".wh.") {
				t.Fatalf("whiteout %q survived", p)
			}
			if parent := ft[path.Dir(p)]; parent == nil || parent.mode&unix.S_IFMT != unix.S_IFDIR {
				t.Fatalf("%q has no parent directory", p)
			}
		}
	})
}

// TestRewriteConfigNullIsAnError: a source config that is JSON null, or
// whose history holds a null entry, made rewriteConfig panic writing to a
// nil map (found with FuzzRewriteConfig; seeds in
// testdata/fuzz/FuzzRewriteConfig). Both are errors now.
func TestRewriteConfigNullIsAnError(t *testing.T) {
	ids := []digest.Digest{digest.FromString("bootstrap")}
	for _, c := range []struct {
		raw  string
		only bool
	}{{`null`, false}, {`{"history":[null]}`, true}, {`{"history":[{},null]}`, false}} {
		if out, err := rewriteConfig([]byte(c.raw), ids, c.only); err == nil {
			t.Errorf("%s: accepted as %s", c.raw, out)
		}
	}
	if _, err := rewriteConfig([]byte(`{"history":null}`), ids, true); err != nil {
		t.Errorf("null history: %v", err)
	}
}
