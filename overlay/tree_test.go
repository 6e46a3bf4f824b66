package overlay_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// oldTime is the mtime every lower object gets; times after it are the
// test's own and compare only as "recent".
var oldTime = time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)

// makeLower builds the lower tree the scripts run on.
func makeLower(t testing.TB) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "lower")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"a/sub", "b", "c", "e", "deep/x/y", "m/n/o", "w/q", "v/v1"} {
		must(os.MkdirAll(filepath.Join(d, p), 0o755))
	}
	files := map[string]string{
		"a/f1": "one\n", "a/f2": "two\n", "a/sub/g": "gee", "b/x": "ex", "c/y": "why",
		"top.txt": "top file contents", "top2": "t2", "h1": "hard", "gone": "bye", "m/n/o/p": "pee", "w/q/r": "arr", "w/s": "ess", "v/v1/k": "kay", "lnk-target": "t", "deep/x/y/z": "zed",
	}
	for p, c := range files {
		must(os.WriteFile(filepath.Join(d, p), []byte(c), 0o644))
	}
	big := make([]byte, 1<<20+123)
	for i := range big {
		big[i] = byte(i * 7)
	}
	must(os.WriteFile(filepath.Join(d, "big"), big, 0o644))
	must(os.Link(filepath.Join(d, "h1"), filepath.Join(d, "h2")))
	must(os.Symlink("f1", filepath.Join(d, "a/link")))
	must(os.Symlink("m/n", filepath.Join(d, "dirlink")))
	must(os.Symlink("lnk-target", filepath.Join(d, "ln2")))
	must(unix.Mkfifo(filepath.Join(d, "fifo"), 0o640))
	must(unix.Mknod(filepath.Join(d, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(os.Chmod(filepath.Join(d, "top.txt"), 0o640))
	must(os.Chown(filepath.Join(d, "top.txt"), 1000, 1000))
	must(unix.Setxattr(filepath.Join(d, "top.txt"), "user.k", []byte("v"), 0))
	must(unix.Setxattr(filepath.Join(d, "a"), "user.dir", []byte("attr"), 0))
	must(filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(oldTime.UnixNano()), unix.NsecToTimespec(oldTime.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
	// WalkDir visits parents first; fix the directories' times again.
	must(filepath.WalkDir(d, func(p string, de fs.DirEntry, err error) error {
		if err != nil || !de.IsDir() {
			return err
		}
		ts := []unix.Timespec{unix.NsecToTimespec(oldTime.UnixNano()), unix.NsecToTimespec(oldTime.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
	return d
}

// snapshot describes every object under root, one line per path: type,
// permissions, owner, size, links, device, target or content digest,
// xattrs (the overlay's own only when upper, and then just opaque) and
// mtime (exact if it predates the test, else "recent").
func snapshot(t testing.TB, root string, upper bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		var b strings.Builder
		typ := st.Mode & unix.S_IFMT
		fmt.Fprintf(&b, "type=%o perm=%o uid=%d gid=%d", typ>>12, st.Mode&0o7777, st.Uid, st.Gid)
		whiteout := typ == unix.S_IFCHR && st.Rdev == 0
		if !whiteout {
			fmt.Fprintf(&b, " nlink=%d", st.Nlink)
		}
		if typ != unix.S_IFDIR {
			fmt.Fprintf(&b, " size=%d", st.Size)
		}
		switch typ {
		case unix.S_IFCHR, unix.S_IFBLK:
			fmt.Fprintf(&b, " rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " sha=%x", sha256.Sum256(data))
		}
		mt := time.Unix(st.Mtim.Unix())
		if !whiteout && !(typ == unix.S_IFDIR && rel == ".") {
			if mt.Before(oldTime.Add(time.Hour)) {
				fmt.Fprintf(&b, " mtime=%d", mt.UnixNano())
			} else {
				b.WriteString(" mtime=recent")
			}
		}
		for _, x := range xattrs(t, p, upper) {
			fmt.Fprintf(&b, " %s", x)
		}
		out[rel] = b.String()
		return nil
	})
	if err != nil {
		t.Fatalf("snapshot %s: %v", root, err)
	}
	return out
}

func xattrs(t testing.TB, p string, upper bool) []string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var out []string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || strings.HasPrefix(name, "security.") {
			continue
		}
		if strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.") {
			// origin, impure, redirect, ... are kernel bookkeeping;
			// only opaque is part of the format both write.
			if !upper || !strings.HasSuffix(name, ".opaque") {
				continue
			}
		}
		v := make([]byte, 64<<10)
		k, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		out = append(out, fmt.Sprintf("%s=%q", name, v[:k]))
	}
	sort.Strings(out)
	return out
}

// diffTrees reports differences between two snapshots.
func diffTrees(t testing.TB, what string, want, got map[string]string) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		w, okw := want[k]
		g, okg := got[k]
		switch {
		case !okw:
			t.Errorf("%s: %s only in ours: %s", what, k, g)
		case !okg:
			t.Errorf("%s: %s missing from ours: %s", what, k, w)
		case w != g:
			t.Errorf("%s: %s differs:\n  kernel: %s\n  ours:   %s", what, k, w, g)
		}
	}
}
