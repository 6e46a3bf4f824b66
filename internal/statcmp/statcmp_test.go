package statcmp

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTarMatchesExtraction: what Tar derives from a GNU tar archive is what
// GNU tar's extraction of it shows, link counts and hardlink groups
// included.
func TestTarMatchesExtraction(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("GNU tar not installed (apt-get install tar)")
	}
	src := t.TempDir()
	for _, d := range []string{"a/b/c/d", "a/e", "f", "g/h"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(src, "a/file"), []byte("x"), 0o640))
	must(os.Link(filepath.Join(src, "a/file"), filepath.Join(src, "g/link")))
	must(os.Link(filepath.Join(src, "a/file"), filepath.Join(src, "link2")))
	must(os.Symlink("a/file", filepath.Join(src, "sym")))
	must(os.Chmod(filepath.Join(src, "f"), 0o1777))
	archive := filepath.Join(t.TempDir(), "x.tar")
	if out, err := exec.Command("tar", "--format=pax", "-C", src, "-cf", archive, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar -c: %v: %s", err, out)
	}
	dst := t.TempDir()
	if out, err := exec.Command("tar", "-C", dst, "-xpf", archive).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v: %s", err, out)
	}
	extracted, err := Dir(dst)
	must(err)
	b, err := os.ReadFile(archive)
	must(err)
	derived, err := Tar(bytes.NewReader(b))
	must(err)
	if !Check(t, "extraction", extracted, "tar", derived, IgnoreDirSize()) {
		return
	}
	if n := derived["a"].Nlink; n != 4 {
		t.Fatalf("a has nlink %d, want 4 (2 + subdirectories b and e)", n)
	}
}

// TestDiffSeesEveryField: a change to any one field is a difference.
func TestDiffSeesEveryField(t *testing.T) {
	base := Entry{Type: unix.S_IFREG, Perm: 0o644, Nlink: 1, Size: 1, Hash: "h", LinkGroup: "f"}
	changes := map[string]func(*Entry){
		"type": func(e *Entry) { e.Type = unix.S_IFIFO }, "perm": func(e *Entry) { e.Perm |= 0o4000 },
		"uid": func(e *Entry) { e.UID = 1 }, "gid": func(e *Entry) { e.GID = 1 }, "size": func(e *Entry) { e.Size = 2 },
		"nlink": func(e *Entry) { e.Nlink = 2 }, "rdev": func(e *Entry) { e.Rdev = 1 }, "mtime": func(e *Entry) { e.Mtime = 1 },
		"target": func(e *Entry) { e.Target = "x" }, "xattrs": func(e *Entry) { e.Xattrs = "user.a=00;" },
		"content": func(e *Entry) { e.Hash = "i" }, "linkgroup": func(e *Entry) { e.LinkGroup = "g" },
		"atime": func(e *Entry) { e.Atime = 1 }, "ctime": func(e *Entry) { e.Ctime = 1 }, "blocks": func(e *Entry) { e.Blocks = 8 },
	}
	for name, change := range changes {
		got := base
		change(&got)
		d := Diff(Snapshot{"f": base}, Snapshot{"f": got}, Times())
		if len(d) != 1 || !strings.Contains(d[0], name+" ") {
			t.Errorf("%s changed: diff %q", name, d)
		}
		if d := Diff(Snapshot{"f": base}, Snapshot{"f": got}, Times(), Ignore("f", name, "test")); len(d) != 0 {
			t.Errorf("%s ignored: diff %q", name, d)
		}
	}
	if d := Diff(Snapshot{"a": base}, Snapshot{"b": base}); len(d) != 2 {
		t.Errorf("renamed path: diff %q", d)
	}
	dir := Entry{Type: unix.S_IFDIR, Size: 4096}
	if d := Diff(Snapshot{".": dir}, Snapshot{".": {Type: unix.S_IFDIR, Size: 60}}); len(d) != 1 {
		t.Errorf("directory size: diff %q", d)
	}
	if d := Diff(Snapshot{".": dir}, Snapshot{".": {Type: unix.S_IFDIR, Size: 60}}, IgnoreDirSize()); len(d) != 0 {
		t.Errorf("directory size ignored: diff %q", d)
	}
}
