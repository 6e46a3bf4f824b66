package overlay_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/statcmp"
	"github.com/gonydus/nydus/overlay"
)

// makeLinkLower builds a lower tree with a hard-link group of three names
// in two directories (as an image's /etc/greeting and greeting.link), a
// group of two, and a file with one link.
func makeLinkLower(t testing.TB) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "lower")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(d, "etc"), 0o755))
	must(os.MkdirAll(filepath.Join(d, "usr/share"), 0o755))
	must(os.WriteFile(filepath.Join(d, "etc/greeting"), []byte("hello\n"), 0o644))
	must(os.Link(filepath.Join(d, "etc/greeting"), filepath.Join(d, "etc/greeting.link")))
	must(os.Link(filepath.Join(d, "etc/greeting"), filepath.Join(d, "usr/share/greeting")))
	must(os.WriteFile(filepath.Join(d, "pair1"), []byte("pair"), 0o600))
	must(os.Link(filepath.Join(d, "pair1"), filepath.Join(d, "pair2")))
	must(os.WriteFile(filepath.Join(d, "single"), []byte("one"), 0o644))
	return d
}

// linkState describes a merged tree for the hard-link comparison: every
// stat field statcmp records (link groups and link counts included), and
// which names' readdir d_ino differs from their st_ino.
type linkState struct {
	snap     statcmp.Snapshot
	inoMatch []string
}

func captureLinks(t *testing.T, root string) linkState {
	t.Helper()
	snap, err := statcmp.Dir(root)
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	err = filepath.WalkDir(root, func(p string, de os.DirEntry, err error) error {
		if err != nil || !de.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		buf := make([]byte, 64<<10)
		for {
			k, err := unix.Getdents(int(f.Fd()), buf)
			if err != nil || k == 0 {
				return err
			}
			// struct linux_dirent64: d_ino, d_off, d_reclen, d_type, d_name.
			for off := 0; off < k; {
				ino := binary.LittleEndian.Uint64(buf[off:])
				reclen := int(binary.LittleEndian.Uint16(buf[off+16:]))
				name := unix.ByteSliceToString(buf[off+19 : off+reclen])
				off += reclen
				if name == "." || name == ".." {
					continue
				}
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(p, name), &st); err != nil {
					return err
				}
				if st.Ino != ino {
					rel, _ := filepath.Rel(root, filepath.Join(p, name))
					bad = append(bad, rel)
				}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(bad)
	return linkState{snap: snap, inoMatch: bad}
}

func compareLinks(t *testing.T, stage string, kernel, ours linkState) {
	t.Helper()
	statcmp.Check(t, "kernel overlayfs "+stage, kernel.snap, "ours "+stage, ours.snap, statcmp.IgnoreDirSize(),
		statcmp.Ignore(".", "mtime", "the root is each mount's own upper dir, made at its own time"),
		statcmp.Ignore("etc", "mtime", "the steps change it at a different time on each mount"))
	if fmt.Sprint(kernel.inoMatch) != fmt.Sprint(ours.inoMatch) {
		t.Errorf("%s: names whose d_ino is not their st_ino: kernel %v, ours %v", stage, kernel.inoMatch, ours.inoMatch)
	}
}

// linkSteps change the merged tree one copy-up at a time; after each the
// trees are compared.
var linkSteps = []struct {
	name string
	fn   func(m string) error
}{
	{"copy-up etc/greeting (open for write)", func(m string) error {
		f, err := os.OpenFile(filepath.Join(m, "etc/greeting"), os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}},
	{"copy-up pair2 (chown)", func(m string) error { return os.Lchown(filepath.Join(m, "pair2"), 0, 0) }},
	{"link usr/share/greeting to etc/third", func(m string) error {
		return os.Link(filepath.Join(m, "usr/share/greeting"), filepath.Join(m, "etc/third"))
	}},
	{"rename pair1 to moved", func(m string) error {
		return os.Rename(filepath.Join(m, "pair1"), filepath.Join(m, "moved"))
	}},
	{"remove etc/greeting.link", func(m string) error { return os.Remove(filepath.Join(m, "etc/greeting.link")) }},
}

// TestHardlinkGroups compares, field by field, a lower tree with hard-link
// groups as kernel overlayfs (the oracle) and ours show it, before any
// copy-up and after each step of linkSteps: the names of a lower group
// share one st_ino and show the lower link count until copied up, as on
// the kernel; tar and docker export find hard links by (st_dev, st_ino).
// Ours runs over a directory lower and over a RAFS image of it.
func TestHardlinkGroups(t *testing.T) {
	requireMount(t)
	lower := makeLinkLower(t)
	for _, tc := range []struct {
		name  string
		lower func(t *testing.T) overlay.Lower
	}{
		{"dir", func(t *testing.T) overlay.Lower {
			l, err := overlay.NewDirLower(lower)
			if err != nil {
				t.Fatal(err)
			}
			return l
		}},
		{"rafs", func(t *testing.T) overlay.Lower { return rafsLower(t, lower) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			km := mountKernel(t, newLayers(t, lower), "")
			om := mountLower(t, tc.lower(t), newLayers(t, lower))
			compareLinks(t, "before copy-up", captureLinks(t, km), captureLinks(t, om))
			for _, s := range linkSteps {
				kerr, oerr := s.fn(km), s.fn(om)
				if errnoName(kerr) != errnoName(oerr) {
					t.Errorf("%s: kernel %v, ours %v", s.name, kerr, oerr)
				}
				// Ours first, at once: no time for cached entries to expire.
				o := captureLinks(t, om)
				compareLinks(t, "after "+s.name, captureLinks(t, km), o)
			}
		})
	}
}
