package graphdriver

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"
)

// buildPlugin builds the plugin binary, whose userspace-overlay
// subcommand serves userspace container layers.
func buildPlugin(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "docker-nydus-graphdriver")
	if b, err := exec.Command("go", "build", "-o", out, "../cmd/docker-nydus-graphdriver").CombinedOutput(); err != nil {
		t.Fatalf("build plugin: %v\n%s", err, b)
	}
	return out
}

func requireFUSE(t *testing.T) {
	t.Helper()
	requireMounts(t)
	testutil.RequireFUSE(t) // the userspace overlay
}

func modeOpts(plugin string, m ContainerLayer) []Option {
	return []Option{WithContainerLayer(m), WithOverlayServer(plugin, "userspace-overlay")}
}

// wantFSType is the file system a container root has in mode m.
func wantFSType(m ContainerLayer) string {
	if m == ContainerLayerUserspace {
		return "fuse.nydus-overlay"
	}
	return "overlay"
}

// imageWithInit builds base ← child (with whiteouts) ← init (a read-write
// layer written through Get, as dockerd writes its -init layer) ← rw.
func imageWithInit(t *testing.T, d *Driver) {
	t.Helper()
	ctx := context.Background()
	testutil.Must(t, d.Create("base", "", nil))
	if _, err := d.ApplyDiff(ctx, "base", "", tartest.Reader(t, tartest.Dir("etc/"), tartest.File("etc/keep", "k"), tartest.File("etc/gone", "g"), tartest.File("etc/mod", "m"),
		tartest.Dir("tree/"), tartest.Dir("tree/sub/"), tartest.File("tree/sub/f", "f"), tartest.Dir("opq/"), tartest.File("opq/old", "old"), tartest.File("hidden", "h"),
		tartest.Symlink("link", "etc/keep"))); err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, d.Create("child", "base", nil))
	if _, err := d.ApplyDiff(ctx, "child", "base", tartest.Reader(t, tartest.Whiteout("hidden"), tartest.Dir("opq/"), tartest.Opaque("opq"), tartest.File("opq/new", "new"))); err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, d.CreateReadWrite("init", "child", nil))
	root, err := d.Get("init", "")
	testutil.Must(t, err)
	testutil.Must(t, os.WriteFile(filepath.Join(root, "etc/hosts"), nil, 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(root, ".dockerenv"), nil, 0o755))
	testutil.Must(t, d.Put("init"))
	testutil.Must(t, d.CreateReadWrite("rw", "init", nil))
}

// containerWork does the same things in a container root in every mode.
func containerWork(t *testing.T, root string) {
	t.Helper()
	p := func(s string) string { return filepath.Join(root, s) }
	testutil.Must(t, os.Remove(p("etc/gone")))
	testutil.Must(t, os.WriteFile(p("etc/mod"), []byte("modified"), 0o644))
	testutil.Must(t, os.WriteFile(p("added"), []byte("12345"), 0o600))
	testutil.Must(t, os.Mkdir(p("newdir"), 0o750))
	testutil.Must(t, os.WriteFile(p("newdir/x"), []byte("x"), 0o644))
	testutil.Must(t, os.RemoveAll(p("tree")))
	testutil.Must(t, os.Mkdir(p("tree"), 0o755)) // opaque over the removed one
	testutil.Must(t, os.Rename(p("etc/keep"), p("kept")))
	testutil.Must(t, os.Chmod(p("opq/new"), 0o600))
	testutil.Must(t, os.Symlink("kept", p("sym")))
	testutil.Must(t, os.Link(p("added"), p("added-link")))
	testutil.Must(t, os.WriteFile(p("etc/hosts"), []byte("127.0.0.1 me"), 0o644))
}

// diffListing is Diff's tar as "name type mode size sha" lines.
func diffListing(t *testing.T, d *Driver, id, parent string) string {
	t.Helper()
	rc, err := d.Diff(context.Background(), id, parent)
	testutil.Must(t, err)
	defer rc.Close()
	tr := tar.NewReader(rc)
	var lines []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		testutil.Must(t, err)
		sum := sha256.New()
		io.Copy(sum, tr)
		lines = append(lines, fmt.Sprintf("%s %c %o %d %x %s", h.Name, h.Typeflag, h.Mode, h.Size, sum.Sum(nil)[:6], h.Linkname))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func changesListing(t *testing.T, d *Driver, id, parent string) string {
	t.Helper()
	cs, err := d.Changes(context.Background(), id, parent)
	testutil.Must(t, err)
	var out []string
	for _, c := range cs {
		out = append(out, []string{"M", "A", "D"}[c.Kind]+" "+c.Path)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestContainerLayerModesSameResults does the same work in a container
// in kernel and userspace mode and compares the merged trees, Changes
// (docker diff), Diff (docker commit/export) and DiffSize.
func TestContainerLayerModesSameResults(t *testing.T) {
	requireFUSE(t)
	plugin := buildPlugin(t)
	type result struct{ tree, changes, diff string }
	results := map[ContainerLayer]result{}
	for _, m := range []ContainerLayer{ContainerLayerKernel, ContainerLayerUserspace} {
		d, _ := newDriver(t, modeOpts(plugin, m)...)
		imageWithInit(t, d)
		root, err := d.Get("rw", "")
		testutil.Must(t, err)
		if typ, _ := mountedAt(root); typ != wantFSType(m) {
			t.Fatalf("%s: container root is %q, want %q", m, typ, wantFSType(m))
		}
		before := treeOf(t, root)
		for _, want := range []string{"opq/new f new", "etc/hosts f", ".dockerenv f", "link l etc/keep"} {
			if !strings.Contains(before, want) {
				t.Fatalf("%s: merged tree lacks %q:\n%s", m, want, before)
			}
		}
		for _, gone := range []string{"hidden", "opq/old"} {
			if strings.Contains(before, "\n"+gone+" ") {
				t.Fatalf("%s: merged tree shows %s, which a layer deleted:\n%s", m, gone, before)
			}
		}
		containerWork(t, root)
		tree := treeOf(t, root)
		testutil.Must(t, d.Put("rw"))
		results[m] = result{tree: tree, changes: changesListing(t, d, "rw", "init"), diff: diffListing(t, d, "rw", "init")}
		if results[m].changes == "" || results[m].diff == "" {
			t.Fatalf("%s: no changes recorded", m)
		}
	}
	k, u := results[ContainerLayerKernel], results[ContainerLayerUserspace]
	if k.tree != u.tree {
		t.Errorf("merged trees differ:\nkernel:\n%s\nuserspace:\n%s", k.tree, u.tree)
	}
	if k.changes != u.changes {
		t.Errorf("Changes differ:\nkernel:\n%s\nuserspace:\n%s", k.changes, u.changes)
	}
	if k.diff != u.diff {
		t.Errorf("Diff differs:\nkernel:\n%s\nuserspace:\n%s", k.diff, u.diff)
	}
	t.Logf("changes in both modes:\n%s", k.changes)
}

// TestContainerLayerRestartOtherMode: a container mounted by a plugin in
// userspace mode stays usable by a plugin restarted in kernel mode (which
// adopts the mount, then remounts with overlayfs), and the other way round.
func TestContainerLayerRestartOtherMode(t *testing.T) {
	requireFUSE(t)
	plugin := buildPlugin(t)
	a, home := newDriver(t, modeOpts(plugin, ContainerLayerUserspace)...)
	imageWithInit(t, a)
	root, err := a.Get("rw", "")
	testutil.Must(t, err)
	testutil.Must(t, os.WriteFile(filepath.Join(root, "from-userspace"), []byte("u"), 0o644))

	// "Restart": a new driver in kernel mode on the same home, the mount
	// (and its process) left in place.
	b, err := New(modeOpts(plugin, ContainerLayerKernel)...)
	testutil.Must(t, err)
	testutil.Must(t, b.Init(home, nil, nil, nil))
	root2, err := b.Get("rw", "")
	testutil.Must(t, err)
	if typ, _ := mountedAt(root2); typ != "fuse.nydus-overlay" {
		t.Fatalf("restarted plugin: root is %q, want the userspace mount it found", typ)
	}
	if got, err := os.ReadFile(filepath.Join(root2, "from-userspace")); err != nil || string(got) != "u" {
		t.Fatalf("read through the adopted mount: %q, %v", got, err)
	}
	testutil.Must(t, b.Put("rw"))
	testutil.Must(t, b.Put("rw")) // the first plugin's Get, released by dockerd after the restart
	if typ, _ := mountedAt(root2); typ != "" {
		t.Fatalf("after the Puts: still mounted %q", typ)
	}
	root3, err := b.Get("rw", "")
	testutil.Must(t, err)
	if typ, _ := mountedAt(root3); typ != "overlay" {
		t.Fatalf("kernel mode remount: %q", typ)
	}
	if got, err := os.ReadFile(filepath.Join(root3, "from-userspace")); err != nil || string(got) != "u" {
		t.Fatalf("userspace write read through kernel overlayfs: %q, %v", got, err)
	}
	testutil.Must(t, os.Remove(filepath.Join(root3, "etc/mod")))
	testutil.Must(t, os.WriteFile(filepath.Join(root3, "from-kernel"), []byte("k"), 0o644))
	testutil.Must(t, b.Put("rw"))

	c, err := New(modeOpts(plugin, ContainerLayerUserspace)...)
	testutil.Must(t, err)
	testutil.Must(t, c.Init(home, nil, nil, nil))
	root4, err := c.Get("rw", "")
	testutil.Must(t, err)
	if typ, _ := mountedAt(root4); typ != "fuse.nydus-overlay" {
		t.Fatalf("userspace remount: %q", typ)
	}
	if _, err := os.Stat(filepath.Join(root4, "etc/mod")); !os.IsNotExist(err) {
		t.Fatalf("a kernel whiteout is not honoured by the userspace overlay: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(root4, "from-kernel")); err != nil || string(got) != "k" {
		t.Fatalf("kernel write read through userspace: %q, %v", got, err)
	}
	testutil.Must(t, c.Put("rw"))
	want := "A /from-kernel\nA /from-userspace\nD /etc/mod\nM /etc"
	if got := changesListing(t, c, "rw", "init"); got != want {
		t.Fatalf("Changes after both modes:\n%s\nwant:\n%s", got, want)
	}
}

// TestDeepChain128Userspace mounts the 128-layer chain with the userspace
// container layer.
func TestDeepChain128Userspace(t *testing.T) {
	requireFUSE(t)
	plugin := buildPlugin(t)
	d, err := New(modeOpts(plugin, ContainerLayerUserspace)...)
	testutil.Must(t, err)
	home := deepHome(t)
	testutil.Must(t, d.Init(home, nil, nil, nil))
	defer func() {
		d.Cleanup()
		if ms, _ := mountsUnder(home); len(ms) > 0 {
			t.Errorf("mounts left: %v", ms)
		}
	}()
	ids := buildDeepChain(t, d, maxDepth)
	testutil.Must(t, d.CreateReadWrite("rw", ids[len(ids)-1], nil))
	root, err := d.Get("rw", "")
	testutil.Must(t, err)
	if typ, _ := mountedAt(root); typ != "fuse.nydus-overlay" {
		t.Fatalf("root is %q", typ)
	}
	checkDeepRoot(t, root, maxDepth)
	testutil.Must(t, os.WriteFile(filepath.Join(root, "layers", "new"), []byte("rw"), 0o644))
	testutil.Must(t, d.Put("rw"))
	if b, err := os.ReadFile(filepath.Join(home, "rw", "diff", "layers", "new")); err != nil || string(b) != "rw" {
		t.Fatalf("write did not land in the upper dir: %q, %v", b, err)
	}
}

// TestUserspaceProcessKilled: a container root whose userspace overlay
// process died is mounted again at the next Get, the upper dir intact.
func TestUserspaceProcessKilled(t *testing.T) {
	requireFUSE(t)
	plugin := buildPlugin(t)
	d, home := newDriver(t, modeOpts(plugin, ContainerLayerUserspace)...)
	imageWithInit(t, d)
	root, err := d.Get("rw", "")
	testutil.Must(t, err)
	testutil.Must(t, os.WriteFile(filepath.Join(root, "w"), []byte("w"), 0o644))
	b, err := os.ReadFile(filepath.Join(home, "rw", userspacePidName))
	testutil.Must(t, err)
	var pid int
	fmt.Sscan(string(b), &pid)
	testutil.Must(t, syscall.Kill(pid, syscall.SIGKILL))
	for i := 0; i < 200 && processAlive(pid); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	root2, err := d.Get("rw", "")
	testutil.Must(t, err)
	if got, err := os.ReadFile(filepath.Join(root2, "w")); err != nil || string(got) != "w" {
		t.Fatalf("after the process died: %q, %v", got, err)
	}
	testutil.Must(t, d.Put("rw"))
	testutil.Must(t, d.Put("rw"))
}

// TestContainerLayerAutoNestedOverlay: with the home on overlayfs (as in
// a container running dockerd), kernel overlayfs refuses the upper dir;
// kernel mode fails, auto falls back to the userspace overlay.
func TestContainerLayerAutoNestedOverlay(t *testing.T) {
	requireFUSE(t)
	autoOnNestedOverlay(t, buildPlugin(t))
}

// autoOnNestedOverlay homes the driver on an overlayfs and checks that
// kernel mode is refused there and auto mode falls back to the userspace
// overlay, which reads, writes, keeps the work across a remount and
// reports the same changes as kernel mode on an ordinary home. (Overlayfs
// refuses whiteout devices as upper dir contents too, so the work deletes
// nothing.)
func autoOnNestedOverlay(t *testing.T, plugin string) {
	t.Helper()
	base, err := os.MkdirTemp("/tmp", "gdnest")
	testutil.Must(t, err)
	defer os.RemoveAll(base)
	for _, s := range []string{"lo", "up", "wk", "mnt"} {
		testutil.Must(t, os.Mkdir(filepath.Join(base, s), 0o755))
	}
	mnt := filepath.Join(base, "mnt")
	if err := syscall.Mount("overlay", mnt, "overlay", 0, "lowerdir="+filepath.Join(base, "lo")+",upperdir="+filepath.Join(base, "up")+",workdir="+filepath.Join(base, "wk")); err != nil {
		t.Skipf("cannot mount the overlayfs to home the driver on: %v", err)
	}
	defer unmountIfMounted(mnt)
	home := filepath.Join(mnt, "nydus")
	ctx := context.Background()
	image := func(d *Driver) {
		t.Helper()
		testutil.Must(t, d.Create("base", "", nil))
		if _, err := d.ApplyDiff(ctx, "base", "", tartest.Reader(t, tartest.Dir("etc/"), tartest.File("etc/mod", "m"), tartest.File("etc/keep", "k"))); err != nil {
			t.Fatal(err)
		}
		testutil.Must(t, d.CreateReadWrite("rw", "base", nil))
	}

	k, err := New(modeOpts(plugin, ContainerLayerKernel)...)
	testutil.Must(t, err)
	testutil.Must(t, k.Init(home, nil, nil, nil))
	image(k)
	if _, err := k.Get("rw", ""); err == nil {
		k.Put("rw")
		t.Skip("this kernel mounts overlayfs with an overlayfs upper dir: nothing to fall back from")
	} else {
		t.Logf("kernel mode refused: %v", err)
	}
	a, err := New(modeOpts(plugin, ContainerLayerAuto)...)
	testutil.Must(t, err)
	testutil.Must(t, a.Init(home, nil, nil, nil))
	defer a.Cleanup()
	root, err := a.Get("rw", "")
	testutil.Must(t, err)
	if typ, _ := mountedAt(root); typ != "fuse.nydus-overlay" {
		a.Put("rw")
		t.Fatalf("auto mode on a nested overlay: the container root is %q, want fuse.nydus-overlay", typ)
	}
	addOnlyWork(t, root)
	if b, err := os.ReadFile(filepath.Join(root, "etc/mod")); err != nil || string(b) != "modified" {
		t.Fatalf("read back through the userspace overlay: %q, %v", b, err)
	}
	testutil.Must(t, a.Put("rw"))
	got := changesListing(t, a, "rw", "base")
	root, err = a.Get("rw", "")
	testutil.Must(t, err)
	if b, err := os.ReadFile(filepath.Join(root, "newdir/x")); err != nil || string(b) != "x" {
		t.Errorf("remounted: newdir/x %q, %v", b, err)
	}
	testutil.Must(t, a.Put("rw"))

	// The same work in kernel mode on an ordinary home.
	kd, _ := newDriver(t, modeOpts(plugin, ContainerLayerKernel)...)
	image(kd)
	kroot, err := kd.Get("rw", "")
	testutil.Must(t, err)
	if typ, _ := mountedAt(kroot); typ != "overlay" {
		t.Fatalf("kernel mode on an ordinary home: the container root is %q", typ)
	}
	addOnlyWork(t, kroot)
	testutil.Must(t, kd.Put("rw"))
	if want := changesListing(t, kd, "rw", "base"); got != want || got == "" {
		t.Fatalf("changes in auto mode:\n%s\nkernel mode:\n%s", got, want)
	}
}

func addOnlyWork(t *testing.T, root string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(root, "etc/keep")); err != nil || string(b) != "k" {
		t.Fatalf("lower file: %q, %v", b, err)
	}
	testutil.Must(t, os.WriteFile(filepath.Join(root, "etc/mod"), []byte("modified"), 0o644))
	testutil.Must(t, os.Mkdir(filepath.Join(root, "newdir"), 0o750))
	testutil.Must(t, os.WriteFile(filepath.Join(root, "newdir/x"), []byte("x"), 0o644))
	testutil.Must(t, os.Symlink("etc/keep", filepath.Join(root, "sym")))
}
