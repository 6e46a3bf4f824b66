package graphdriver

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/internal/testutil"
)

// TestLayersOverlayWhiteouts applies a base layer and a child carrying
// docker-format whiteouts (a deleted file, an opaque dir) and checks the
// merged view through kernel overlayfs.
func TestLayersOverlayWhiteouts(t *testing.T) {
	requireMounts(t)
	d, _ := newDriver(t)
	ctx := context.Background()
	testutil.Must(t, d.Create("base", "", nil))
	if _, err := d.ApplyDiff(ctx, "base", "", tartest.Reader(t, tartest.Dir("etc/"), tartest.File("etc/a", "A"), tartest.File("etc/b", "B"), tartest.Dir("opq/"), tartest.File("opq/old", "old"))); err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, d.Create("child", "base", nil))
	if _, err := d.ApplyDiff(ctx, "child", "base", tartest.Reader(t, tartest.Dir("etc/"), tartest.Whiteout("etc/a"), tartest.Dir("opq/"), tartest.Opaque("opq"), tartest.File("opq/new", "new"))); err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, d.CreateReadWrite("rw", "child", nil))
	root, err := d.Get("rw", "")
	testutil.Must(t, err)
	want := ". d\netc d\netc/b f B\nopq d\nopq/new f new"
	if got := treeOf(t, root); got != want {
		t.Fatalf("merged tree:\n%s\nwant:\n%s", got, want)
	}
	// A second Get shares the mount; the last Put unmounts.
	root2, err := d.Get("rw", "")
	testutil.Must(t, err)
	if root2 != root {
		t.Fatalf("second Get returned %s, want %s", root2, root)
	}
	testutil.Must(t, d.Put("rw"))
	if typ, _ := mountedAt(root); typ != "overlay" {
		t.Fatalf("after one of two Puts: mounted %q, want overlay", typ)
	}
	testutil.Must(t, d.Put("rw"))
	if typ, _ := mountedAt(root); typ != "" {
		t.Fatalf("after the last Put: still mounted (%s)", typ)
	}
}

// TestDiffChangesDiffSize writes into a container layer and checks that
// Diff emits a docker layer tar (with .wh. whiteouts), Changes lists the
// right kinds, and DiffSize counts the new bytes.
func TestDiffChangesDiffSize(t *testing.T) {
	requireMounts(t)
	d, _ := newDriver(t)
	ctx := context.Background()
	testutil.Must(t, d.Create("base", "", nil))
	if _, err := d.ApplyDiff(ctx, "base", "", tartest.Reader(t, tartest.Dir("etc/"), tartest.File("etc/keep", "k"), tartest.File("etc/gone", "g"), tartest.File("etc/mod", "m"))); err != nil {
		t.Fatal(err)
	}
	testutil.Must(t, d.CreateReadWrite("rw", "base", nil))
	root, err := d.Get("rw", "")
	testutil.Must(t, err)
	testutil.Must(t, os.Remove(filepath.Join(root, "etc/gone")))
	testutil.Must(t, os.WriteFile(filepath.Join(root, "etc/mod"), []byte("modified"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(root, "added"), []byte("12345"), 0o644))
	testutil.Must(t, d.Put("rw"))

	changes, err := d.Changes(ctx, "rw", "base")
	testutil.Must(t, err)
	var got []string
	for _, c := range changes {
		got = append(got, []string{"M", "A", "D"}[c.Kind]+" "+c.Path)
	}
	sort.Strings(got)
	want := []string{"A /added", "D /etc/gone", "M /etc", "M /etc/mod"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("changes %v, want %v", got, want)
	}
	size, err := d.DiffSize(ctx, "rw", "base")
	testutil.Must(t, err)
	if size != int64(len("modified")+len("12345")) {
		t.Fatalf("DiffSize %d, want %d", size, len("modified")+len("12345"))
	}
	rc, err := d.Diff(ctx, "rw", "base")
	testutil.Must(t, err)
	names := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		testutil.Must(t, err)
		b, _ := io.ReadAll(tr)
		names[h.Name] = string(b)
	}
	rc.Close()
	for name, body := range map[string]string{"added": "12345", "etc/mod": "modified", "etc/.wh.gone": ""} {
		if got, ok := names[name]; !ok || got != body {
			t.Errorf("diff tar entry %s = %q (present %v), want %q; entries %v", name, got, ok, body, names)
		}
	}
	if _, ok := names["etc/keep"]; ok {
		t.Errorf("diff tar carries the unchanged etc/keep")
	}
	// The diff applies on a fresh layer and reproduces the container's tree.
	rc, err = d.Diff(ctx, "rw", "base")
	testutil.Must(t, err)
	testutil.Must(t, d.Create("replay", "base", nil))
	if _, err := d.ApplyDiff(ctx, "replay", "base", rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	testutil.Must(t, d.CreateReadWrite("check", "replay", nil))
	croot, err := d.Get("check", "")
	testutil.Must(t, err)
	defer d.Put("check")
	if got, want := treeOf(t, croot), ". d\nadded f 12345\netc d\netc/keep f k\netc/mod f modified"; got != want {
		t.Fatalf("replayed tree:\n%s\nwant:\n%s", got, want)
	}
}

// TestRemoveAndExists covers the lifecycle bookkeeping.
func TestRemoveAndExists(t *testing.T) {
	requireMounts(t)
	d, home := newDriver(t)
	testutil.Must(t, d.Create("a", "", nil))
	testutil.Must(t, d.CreateReadWrite("b", "a", nil))
	if !d.Exists("a") || !d.Exists("b") || d.Exists("c") {
		t.Fatal("Exists is wrong")
	}
	if err := d.Create("a", "", nil); err == nil {
		t.Fatal("creating an existing layer succeeded")
	}
	if err := d.Create("x", "missing", nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing parent: %v", err)
	}
	if err := d.Create("y", "", map[string]string{"size": "10G"}); err == nil {
		t.Fatal("an unsupported storage option was accepted")
	}
	root, err := d.Get("b", "")
	testutil.Must(t, err)
	testutil.Must(t, d.Remove("b")) // dockerd removes after Put, but a mounted layer must still go cleanly
	if typ, _ := mountedAt(root); typ != "" {
		t.Fatal("Remove left the mount")
	}
	testutil.Must(t, d.Remove("a"))
	if d.Exists("a") || d.Exists("b") {
		t.Fatal("removed layers exist")
	}
	links, _ := os.ReadDir(filepath.Join(home, linkDir))
	if len(links) != 0 {
		t.Fatalf("short links left: %v", links)
	}
	for _, bad := range []string{"", "..", "a/b", "l"} {
		if err := d.Create(bad, "", nil); err == nil {
			t.Errorf("id %q accepted", bad)
		}
	}
}

// TestHostileTar: entries escaping the layer are refused and nothing is
// written outside it.
func TestHostileTar(t *testing.T) {
	requireMounts(t)
	d, home := newDriver(t)
	testutil.Must(t, d.Create("evil", "", nil))
	_, err := d.ApplyDiff(context.Background(), "evil", "", tartest.Reader(t, tartest.File("../../escaped", "x")))
	if _, statErr := os.Stat(filepath.Join(home, "escaped")); statErr == nil {
		t.Fatal("a ../ entry escaped the layer")
	}
	if _, statErr := os.Stat(filepath.Join(filepath.Dir(home), "escaped")); statErr == nil {
		os.Remove(filepath.Join(filepath.Dir(home), "escaped"))
		t.Fatal("a ../../ entry escaped the home")
	}
	// containerd's extractor confines the name instead of failing: either
	// outcome is safe as long as nothing escaped.
	t.Logf("ApplyDiff of ../../escaped: %v", err)
	testutil.Must(t, d.Create("evil2", "", nil))
	_, err = d.ApplyDiff(context.Background(), "evil2", "", tartest.Reader(t, tartest.Symlink("abs", "/etc"), tartest.File("abs/passwd-owned", "x")))
	if _, statErr := os.Stat("/etc/passwd-owned"); statErr == nil {
		os.Remove("/etc/passwd-owned")
		t.Fatal("a write through an absolute symlink escaped")
	}
	t.Logf("ApplyDiff through an absolute symlink: %v", err)
}

// TestUserNamespaceMaps: owners are shifted into the host range, and owners
// outside the maps are refused.
func TestUserNamespaceMaps(t *testing.T) {
	requireMounts(t)
	d, home := newDriver(t)
	maps := []IDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
	testutil.Must(t, d.Init(home, nil, maps, maps))
	testutil.Must(t, d.Create("u", "", nil))
	tr := tartest.Reader(t, tartest.File("f", ""))
	if _, err := d.ApplyDiff(context.Background(), "u", "", tr); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	testutil.Must(t, syscall.Lstat(filepath.Join(home, "u", "diff", "f"), &st))
	if st.Uid != 100000 || st.Gid != 100000 {
		t.Fatalf("owner %d:%d, want 100000:100000", st.Uid, st.Gid)
	}
	if hostID(maps, 70000) != -1 {
		t.Fatal("an id outside the map was mapped")
	}
}

func TestNotInitialized(t *testing.T) {
	d, err := New()
	testutil.Must(t, err)
	if err := d.Create("a", "", nil); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("Create before Init: %v", err)
	}
	if err := d.Init("relative", nil, nil, nil); err == nil {
		t.Fatal("relative home accepted")
	}
	if err := d.Init("/tmp/x", []string{"overlay2.size=1G"}, nil, nil); err == nil {
		t.Fatal("unknown storage option accepted")
	}
}
