package graphdriver

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/testutil"
)

// nydusLayerTar builds a RAFS image of src with nydus-image and returns
// a bootstrap layer tar naming a localfs backend over the blob dir.
func nydusLayerTar(t *testing.T, image, src string) *bytes.Reader {
	t.Helper()
	work := t.TempDir()
	blobs := filepath.Join(work, "blobs")
	boot := filepath.Join(work, "image.boot")
	if out, err := exec.Command(image, "create", "--log-level", "warn", "--bootstrap", boot, "--blob-dir", blobs, src).CombinedOutput(); err != nil {
		t.Fatalf("nydus-image create: %v\n%s", err, out)
	}
	b, err := os.ReadFile(boot)
	must(t, err)
	backend, _ := json.Marshal(map[string]any{"type": "localfs", "config": map[string]any{"dir": blobs}})
	return tarOf(t, dir("image/"), file("image/image.boot", string(b)), file("image/backend.json", string(backend)))
}

// TestNydusLayer: a bootstrap layer is adopted, served by nydusd, merged
// under a container layer, and removed with its nydusd.
func TestNydusLayer(t *testing.T) {
	requireMounts(t)
	testutil.RequireFUSE(t)
	nydusd, image := buildBinaries(t)
	d, home := newDriver(t, WithNydusd(nydusd))
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "etc/greeting"), []byte("hello"), 0o644))
	must(t, os.Symlink("greeting", filepath.Join(src, "etc/link")))
	must(t, os.WriteFile(filepath.Join(src, "big"), bytes.Repeat([]byte("0123456789"), 300_000), 0o644))
	ctx := context.Background()

	must(t, d.Create("img", "", nil))
	if _, err := d.ApplyDiff(ctx, "img", "", nydusLayerTar(t, image, src)); err != nil {
		t.Fatal(err)
	}
	if !isNydusLayer(filepath.Join(home, "img")) {
		t.Fatal("bootstrap layer not recognised")
	}
	if ents, _ := os.ReadDir(filepath.Join(home, "img", "diff")); len(ents) != 0 {
		t.Fatalf("diff dir of a nydus layer is not empty: %v", ents)
	}
	must(t, d.CreateReadWrite("init", "img", nil))
	must(t, d.CreateReadWrite("rw", "init", nil))
	root, err := d.Get("rw", "")
	must(t, err)
	if got, want := treeOf(t, root), treeOf(t, src); got != want {
		t.Fatalf("container root:\n%.400s\nwant:\n%.400s", got, want)
	}
	if typ, _ := mountedAt(filepath.Join(home, "img", "diff")); !strings.HasPrefix(typ, "fuse") {
		t.Fatalf("nydus layer mounted as %q, want fuse", typ)
	}
	must(t, os.WriteFile(filepath.Join(root, "etc/greeting"), []byte("changed"), 0o644))
	must(t, d.Put("rw"))
	changes, err := d.Changes(ctx, "rw", "init")
	must(t, err)
	if len(changes) != 2 || changes[0].Path != "/etc" || changes[1].Path != "/etc/greeting" {
		t.Fatalf("changes over a nydus layer: %+v", changes)
	}
	// A fresh driver (a restarted plugin) adopts the running nydusd.
	d2, err := New(WithNydusd(nydusd), WithLogger(d.log))
	must(t, err)
	must(t, d2.Init(home, nil, nil, nil))
	root, err = d2.Get("rw", "")
	must(t, err)
	if b, err := os.ReadFile(filepath.Join(root, "etc/greeting")); err != nil || string(b) != "changed" {
		t.Fatalf("after a plugin restart: %q, %v", b, err)
	}
	must(t, d2.Put("rw"))
	// A nydusd that died leaves a dead mount; the next Get replaces it.
	pid, _ := os.ReadFile(filepath.Join(home, "img", nydusDir, pidName))
	must(t, syscall.Kill(atoi(t, string(pid)), syscall.SIGKILL))
	for i := 0; i < 100 && processAlive(atoi(t, string(pid))); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	root, err = d2.Get("rw", "")
	must(t, err)
	if b, err := os.ReadFile(filepath.Join(root, "big")); err != nil || len(b) != 3_000_000 {
		t.Fatalf("reading the nydus layer after its nydusd died: %d bytes, %v", len(b), err)
	}
	must(t, d2.Put("rw"))
	pid, _ = os.ReadFile(filepath.Join(home, "img", nydusDir, pidName))
	for _, id := range []string{"rw", "init", "img"} {
		must(t, d2.Remove(id))
	}
	if len(pid) > 0 {
		if _, err := os.Stat("/proc/" + string(pid)); err == nil && processAlive(atoi(t, string(pid))) {
			t.Fatalf("nydusd %s still runs after Remove", pid)
		}
	}
	if ms, _ := mountsUnder(home); len(ms) != 0 {
		t.Fatalf("mounts left: %v", ms)
	}
}

// TestCorruptBootstrapLayer: a layer that looks like a bootstrap layer but
// does not hold a RAFS image is refused with a clear error.
func TestCorruptBootstrapLayer(t *testing.T) {
	requireMounts(t)
	d, _ := newDriver(t)
	must(t, d.Create("bad", "", nil))
	_, err := d.ApplyDiff(context.Background(), "bad", "", tarOf(t, dir("image/"), file("image/image.boot", strings.Repeat("garbage!", 1024))))
	if err == nil || !strings.Contains(err.Error(), "not a valid RAFS v6 image") {
		t.Fatalf("corrupt bootstrap: %v", err)
	}
	must(t, d.Create("creds", "", nil))
	_, err = d.ApplyDiff(context.Background(), "creds", "", tarOf(t, dir("image/"), file("image/image.boot", "x"),
		file("image/backend.json", `{"type":"registry","config":{"host":"h","repo":"r","auth":"c2VjcmV0"}}`)))
	if err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("a bootstrap layer with credentials: %v", err)
	}
	// An ordinary layer that merely has an image/ dir among others is not a
	// bootstrap layer.
	must(t, d.Create("plain", "", nil))
	if _, err := d.ApplyDiff(context.Background(), "plain", "", tarOf(t, dir("image/"), file("image/image.boot", "x"), file("other", "y"))); err != nil {
		t.Fatalf("ordinary layer with an image/ dir: %v", err)
	}
}

// TestNydusdFailsToMount: a backend nydusd cannot use gives an error
// carrying nydusd's own message, and no mount stays.
func TestNydusdFailsToMount(t *testing.T) {
	requireMounts(t)
	testutil.RequireFUSE(t)
	nydusd, image := buildBinaries(t)
	d, home := newDriver(t, WithNydusd(nydusd), WithNydusdConfig([]byte(`{"device":{"cache":{"type":"nonsense-cache"}}}`)))
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644))
	must(t, d.Create("img", "", nil))
	if _, err := d.ApplyDiff(context.Background(), "img", "", nydusLayerTar(t, image, src)); err != nil {
		t.Fatal(err)
	}
	_, err := d.Get("img", "")
	if err == nil || !strings.Contains(err.Error(), "nydusd") {
		t.Fatalf("Get with a broken nydusd config: %v", err)
	}
	t.Logf("error: %v", err)
	if ms, _ := mountsUnder(home); len(ms) != 0 {
		t.Fatalf("mounts left: %v", ms)
	}
}

func atoi(t *testing.T, s string) int {
	n := 0
	for _, c := range strings.TrimSpace(s) {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}
