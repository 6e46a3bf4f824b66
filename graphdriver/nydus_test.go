package graphdriver

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"
)

// nydusLayerTar builds a RAFS image of src with nydus-image and returns
// a bootstrap layer tar without a backend file, and the plugin
// configuration (JSON) of a localfs backend over its blob dir: an image
// may only name a registry, so a local backend is the plugin's choice.
func nydusLayerTar(t *testing.T, image, src string, cache ...string) (*bytes.Reader, []byte) {
	t.Helper()
	work := t.TempDir()
	blobs := filepath.Join(work, "blobs")
	boot := filepath.Join(work, "image.boot")
	if out, err := exec.Command(image, "create", "--log-level", "warn", "--bootstrap", boot, "--blob-dir", blobs, src).CombinedOutput(); err != nil {
		t.Fatalf("nydus-image create: %v\n%s", err, out)
	}
	b, err := os.ReadFile(boot)
	testutil.Must(t, err)
	device := map[string]any{"backend": map[string]any{"type": "localfs", "config": map[string]any{"dir": blobs}}}
	if len(cache) > 0 {
		device["cache"] = map[string]any{"type": cache[0]}
	}
	cfg, _ := json.Marshal(map[string]any{"device": device})
	return tartest.Reader(t, tartest.Dir("image/"), tartest.File("image/image.boot", string(b))), cfg
}

// TestNydusLayer: a bootstrap layer is adopted, served by nydusd, merged
// under a container layer (in both container-layer modes), and removed
// with its nydusd.
func TestNydusLayer(t *testing.T) {
	requireMounts(t)
	testutil.RequireFUSE(t)
	nydusd, image := buildBinaries(t)
	plugin := buildPlugin(t)
	for _, m := range []ContainerLayer{ContainerLayerKernel, ContainerLayerUserspace} {
		t.Run(string(m), func(t *testing.T) { testNydusLayer(t, nydusd, image, modeOpts(plugin, m)...) })
	}
}

func testNydusLayer(t *testing.T, nydusd, image string, mode ...Option) {
	src := t.TempDir()
	testutil.Must(t, os.MkdirAll(filepath.Join(src, "etc"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(src, "etc/greeting"), []byte("hello"), 0o644))
	testutil.Must(t, os.Symlink("greeting", filepath.Join(src, "etc/link")))
	testutil.Must(t, os.WriteFile(filepath.Join(src, "big"), bytes.Repeat([]byte("0123456789"), 300_000), 0o644))
	ctx := context.Background()
	layer, cfg := nydusLayerTar(t, image, src)
	d, home := newDriver(t, append([]Option{WithNydusd(nydusd), WithNydusdConfig(cfg)}, mode...)...)

	testutil.Must(t, d.Create("img", "", nil))
	if _, err := d.ApplyDiff(ctx, "img", "", layer); err != nil {
		t.Fatal(err)
	}
	if !isNydusLayer(filepath.Join(home, "img")) {
		t.Fatal("bootstrap layer not recognised")
	}
	if ents, _ := os.ReadDir(filepath.Join(home, "img", "diff")); len(ents) != 0 {
		t.Fatalf("diff dir of a nydus layer is not empty: %v", ents)
	}
	// Get of the nydus layer itself (dockerd reassembling its tar for
	// docker save or push): its own files at their paths, the image's
	// tree under them.
	layer.Seek(0, 0)
	wantBoot := tarMember(t, layer, "image/image.boot")
	img, err := d.Get("img", "")
	testutil.Must(t, err)
	if b, err := os.ReadFile(filepath.Join(img, "image/image.boot")); err != nil || !bytes.Equal(b, wantBoot) {
		t.Fatalf("Get of the nydus layer: image/image.boot is %d bytes (%v), want the layer's %d", len(b), err, len(wantBoot))
	}
	if b, err := os.ReadFile(filepath.Join(img, "etc/greeting")); err != nil || string(b) != "hello" {
		t.Fatalf("Get of the nydus layer: etc/greeting %q, %v", b, err)
	}
	testutil.Must(t, d.Put("img"))
	if typ, _ := mountedAt(img); typ != "" {
		t.Fatalf("after Put: still mounted %q", typ)
	}
	rc, err := d.Diff(ctx, "img", "")
	testutil.Must(t, err)
	got, err := io.ReadAll(rc)
	testutil.Must(t, err)
	rc.Close()
	layer.Seek(0, 0)
	orig, _ := io.ReadAll(layer)
	if !bytes.Equal(got, orig) {
		t.Fatalf("Diff of the nydus layer: %d bytes, not the %d-byte layer tar it was applied from", len(got), len(orig))
	}

	testutil.Must(t, d.CreateReadWrite("init", "img", nil))
	testutil.Must(t, d.CreateReadWrite("rw", "init", nil))
	root, err := d.Get("rw", "")
	testutil.Must(t, err)
	if got, want := treeOf(t, root), treeOf(t, src); got != want {
		t.Fatalf("container root:\n%.400s\nwant:\n%.400s", got, want)
	}
	if typ, _ := mountedAt(filepath.Join(home, "img", "diff")); !strings.HasPrefix(typ, "fuse") {
		t.Fatalf("nydus layer mounted as %q, want fuse", typ)
	}
	if typ, _ := mountedAt(root); typ != wantFSType(d.containerLayerMode()) {
		t.Fatalf("container root mounted as %q, want %q", typ, wantFSType(d.containerLayerMode()))
	}
	testutil.Must(t, os.WriteFile(filepath.Join(root, "etc/greeting"), []byte("changed"), 0o644))
	testutil.Must(t, d.Put("rw"))
	changes, err := d.Changes(ctx, "rw", "init")
	testutil.Must(t, err)
	if len(changes) != 2 || changes[0].Path != "/etc" || changes[1].Path != "/etc/greeting" {
		t.Fatalf("changes over a nydus layer: %+v", changes)
	}
	// A fresh driver (a restarted plugin) adopts the running nydusd.
	d2, err := New(append([]Option{WithNydusd(nydusd), WithNydusdConfig(cfg), WithLogger(d.log)}, mode...)...)
	testutil.Must(t, err)
	testutil.Must(t, d2.Init(home, nil, nil, nil))
	root, err = d2.Get("rw", "")
	testutil.Must(t, err)
	if b, err := os.ReadFile(filepath.Join(root, "etc/greeting")); err != nil || string(b) != "changed" {
		t.Fatalf("after a plugin restart: %q, %v", b, err)
	}
	testutil.Must(t, d2.Put("rw"))
	// A nydusd that died leaves a dead mount; the next Get replaces it.
	pid, _ := os.ReadFile(filepath.Join(home, "img", nydusDir, pidName))
	testutil.Must(t, syscall.Kill(atoi(t, string(pid)), syscall.SIGKILL))
	for i := 0; i < 100 && processAlive(atoi(t, string(pid))); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	root, err = d2.Get("rw", "")
	testutil.Must(t, err)
	if b, err := os.ReadFile(filepath.Join(root, "big")); err != nil || len(b) != 3_000_000 {
		t.Fatalf("reading the nydus layer after its nydusd died: %d bytes, %v", len(b), err)
	}
	testutil.Must(t, d2.Put("rw"))
	pid, _ = os.ReadFile(filepath.Join(home, "img", nydusDir, pidName))
	for _, id := range []string{"rw", "init", "img"} {
		testutil.Must(t, d2.Remove(id))
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
	d, home := newDriver(t)
	testutil.Must(t, d.Create("bad", "", nil))
	_, err := d.ApplyDiff(context.Background(), "bad", "", tartest.Reader(t, tartest.Dir("image/"), tartest.File("image/image.boot", strings.Repeat("garbage!", 1024))))
	if err == nil || !strings.Contains(err.Error(), "not a valid RAFS v6 image") {
		t.Fatalf("corrupt bootstrap: %v", err)
	}
	testutil.Must(t, d.Create("creds", "", nil))
	_, err = d.ApplyDiff(context.Background(), "creds", "", tartest.Reader(t, tartest.Dir("image/"), tartest.File("image/image.boot", "x"),
		tartest.File("image/backend.json", `{"type":"registry","config":{"host":"h","repo":"r","auth":"c2VjcmV0"}}`)))
	if err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Fatalf("a bootstrap layer with credentials: %v", err)
	}
	// An ordinary layer that merely has an image/ dir among others is not a
	// bootstrap layer.
	testutil.Must(t, d.Create("plain", "", nil))
	if _, err := d.ApplyDiff(context.Background(), "plain", "", tartest.Reader(t, tartest.Dir("image/"), tartest.File("image/image.boot", "x"), tartest.File("other", "y"))); err != nil {
		t.Fatalf("ordinary layer with an image/ dir: %v", err)
	}
	if ents, _ := filepath.Glob(filepath.Join(home, "plain", keptTarName+"*")); len(ents) != 0 {
		t.Fatalf("the copy of an ordinary layer's tar stays: %v", ents)
	}
}

// TestNydusdFailsToMount: a backend nydusd cannot use gives an error
// carrying nydusd's own message, and no mount stays.
func TestNydusdFailsToMount(t *testing.T) {
	requireMounts(t)
	testutil.RequireFUSE(t)
	nydusd, image := buildBinaries(t)
	src := t.TempDir()
	testutil.Must(t, os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644))
	layer, cfg := nydusLayerTar(t, image, src, "nonsense-cache")
	d, home := newDriver(t, WithNydusd(nydusd), WithNydusdConfig(cfg))
	testutil.Must(t, d.Create("img", "", nil))
	if _, err := d.ApplyDiff(context.Background(), "img", "", layer); err != nil {
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

// tarMember returns the content of name in the tar r (nil if absent).
func tarMember(t *testing.T, r io.Reader, name string) []byte {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		testutil.Must(t, err)
		if strings.TrimPrefix(h.Name, "./") == name {
			b, err := io.ReadAll(tr)
			testutil.Must(t, err)
			return b
		}
	}
}

// TestNydusLayerUsernsRemap: under user-namespace maps, a container on a
// nydus layer sees the image's owners shifted in userspace and auto mode,
// writes through copy-up keep the shifted owner, and kernel mode refuses
// with the reason.
func TestNydusLayerUsernsRemap(t *testing.T) {
	requireFUSE(t)
	nydusd, image := buildBinaries(t)
	plugin := buildPlugin(t)
	src := t.TempDir()
	testutil.Must(t, os.MkdirAll(filepath.Join(src, "home/app"), 0o755))
	testutil.Must(t, os.WriteFile(filepath.Join(src, "home/app/f"), []byte("app"), 0o644))
	testutil.Must(t, os.Lchown(filepath.Join(src, "home/app"), 1000, 1000))
	testutil.Must(t, os.Lchown(filepath.Join(src, "home/app/f"), 1000, 1001))
	testutil.Must(t, os.WriteFile(filepath.Join(src, "rootfile"), []byte("r"), 0o644))
	layer, cfg := nydusLayerTar(t, image, src)
	raw, _ := io.ReadAll(layer)
	maps := []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	owner := func(p string) [2]uint32 {
		var st syscall.Stat_t
		testutil.Must(t, syscall.Lstat(p, &st))
		return [2]uint32{st.Uid, st.Gid}
	}
	for _, m := range []ContainerLayer{ContainerLayerKernel, ContainerLayerUserspace, ContainerLayerAuto} {
		t.Run(string(m), func(t *testing.T) {
			home, err := os.MkdirTemp("/tmp", "gdun")
			testutil.Must(t, err)
			defer os.RemoveAll(home)
			d, err := New(append([]Option{WithNydusd(nydusd), WithNydusdConfig(cfg)}, modeOpts(plugin, m)...)...)
			testutil.Must(t, err)
			testutil.Must(t, d.Init(home, nil, maps, maps))
			defer func() {
				d.Cleanup()
				if ms, _ := mountsUnder(home); len(ms) > 0 {
					t.Errorf("mounts left: %v", ms)
				}
			}()
			ctx := context.Background()
			testutil.Must(t, d.Create("img", "", nil))
			if _, err := d.ApplyDiff(ctx, "img", "", bytes.NewReader(raw)); err != nil {
				t.Fatal(err)
			}
			testutil.Must(t, d.CreateReadWrite("rw", "img", nil))
			root, err := d.Get("rw", "")
			if m == ContainerLayerKernel {
				if err == nil || !strings.Contains(err.Error(), "user-namespace") || !strings.Contains(err.Error(), "userspace") {
					t.Fatalf("kernel mode under userns maps: %v, want a refusal naming the reason and the way out", err)
				}
				return
			}
			testutil.Must(t, err)
			for p, want := range map[string][2]uint32{"home/app": {101000, 101000}, "home/app/f": {101000, 101001}, "rootfile": {100000, 100000}, ".": {100000, 100000}} {
				if got := owner(filepath.Join(root, p)); got != want {
					t.Errorf("%s: owner %v, want %v", p, got, want)
				}
			}
			testutil.Must(t, os.WriteFile(filepath.Join(root, "home/app/f"), []byte("changed"), 0o644)) // copy-up
			testutil.Must(t, d.Put("rw"))
			if got := owner(filepath.Join(home, "rw", "diff", "home/app/f")); got != [2]uint32{101000, 101001} {
				t.Fatalf("copied-up file in the upper dir: owner %v, want the shifted 101000:101001", got)
			}
		})
	}
}
