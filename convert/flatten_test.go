package convert

import (
	"bytes"
	"maps"
	"slices"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"

	"golang.org/x/sys/unix"
)

// TestFlattenOCI pins the source-side semantics check compares against:
// whiteouts and opaque directories hide only lower layers, hardlinks
// share content, implicit parents do not override existing directories.
func TestFlattenOCI(t *testing.T) {
	ft := newFlatTree()
	for _, l := range testLayers(t) {
		if err := ft.applyLayer(bytes.NewReader(tartest.Tar(t, l...))); err != nil {
			t.Fatal(err)
		}
	}
	got := slices.Sorted(maps.Keys(ft))
	want := []string{"/", "/bin", "/bin/tool", "/bin/tool-hard", "/data", "/data/kept", "/dev", "/dev/fifo", "/dev/null",
		"/dir", "/dir/new", "/etc", "/etc/attr", "/etc/empty", "/etc/passwd", "/etc/suid", "/x", "/x/dangling", "/x/h1", "/x/h2"}
	if !slices.Equal(got, want) {
		t.Fatalf("paths %q\nwant %q", got, want)
	}
	if d := ft["/data"]; d.mode != unix.S_IFDIR|0o750 || d.uid != 5 || d.implicit {
		t.Fatalf("/data %+v: an implied parent in an upper layer changed it", d)
	}
	if b := ft["/bin"]; b.mode != unix.S_IFDIR|0o700 {
		t.Fatalf("/bin %+v", b)
	}
	if h := ft["/bin/tool-hard"]; h.digest != ft["/bin/tool"].digest || h.group != "/bin/tool" || ft["/bin/tool"].group != "/bin/tool" {
		t.Fatalf("hardlink %+v", h)
	}
	if p := ft["/etc/passwd"]; p.mode != unix.S_IFREG|0o600 {
		t.Fatalf("/etc/passwd %+v", p)
	}
	if a := ft["/etc/attr"]; a.xattrs["user.comment"] != "nydus" {
		t.Fatalf("/etc/attr %+v", a)
	}
	if n := ft["/dev/null"]; n.rdev != unix.Mkdev(1, 3) {
		t.Fatalf("/dev/null %+v", n)
	}

	// A whiteout never hides what its own layer adds.
	ft2 := newFlatTree()
	l := []tartest.Entry{tartest.File("a/f", "1"), tartest.File("a/.wh.f", ""), tartest.File("b/.wh..wh..opq", ""), tartest.File("b/g", "2")}
	if err := ft2.applyLayer(bytes.NewReader(tartest.Tar(t, l...))); err != nil {
		t.Fatal(err)
	}
	if ft2["/a/f"] == nil || ft2["/b/g"] == nil || ft2["/a/.wh.f"] != nil {
		t.Fatalf("same-layer whiteouts: %v", slices.Sorted(maps.Keys(ft2)))
	}
	// A hardlink to nothing is an error, not a silent skip.
	bad := []tartest.Entry{tartest.Hardlink("x", "missing")}
	if err := newFlatTree().applyLayer(bytes.NewReader(tartest.Tar(t, bad...))); err == nil {
		t.Fatal("dangling hardlink accepted")
	}
}

func TestParseBackendFile(t *testing.T) {
	good := `{"type":"registry","config":{"scheme":"https","host":"r.example.com","repo":"a/b"}}`
	if f, err := parseBackendFile([]byte(good)); err != nil || f.Config.Repo != "a/b" {
		t.Fatalf("%+v %v", f, err)
	}
	for _, bad := range []string{
		`{"type":"registry","config":{"scheme":"https","host":"r","repo":"a","auth":"dXNlcjpwYXNz"}}`,
		`{"type":"localfs","config":{"dir":"/x"}}`,
		`{"type":"registry","config":{"scheme":"ftp","host":"r","repo":"a"}}`,
		`{"type":"registry","config":{"scheme":"https","host":"r"}}`,
		`not json`,
	} {
		if _, err := parseBackendFile([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
