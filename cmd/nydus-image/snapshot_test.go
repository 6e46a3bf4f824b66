package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// entry is what a round trip must preserve about one path.
type entry struct {
	Type      uint32
	Perm      uint32
	UID, GID  int
	Mtime     int64 // nanoseconds
	Size      int64
	Hash      string
	Link      string
	Rdev      uint64
	Xattrs    string
	LinkGroup string // smallest path sharing this file's inode (regular files)
}

func (e entry) String() string {
	return fmt.Sprintf("type %#o perm %#o %d:%d mtime %d size %d hash %.12s link %q rdev %d xattrs %q group %q",
		e.Type, e.Perm, e.UID, e.GID, e.Mtime, e.Size, e.Hash, e.Link, e.Rdev, e.Xattrs, e.LinkGroup)
}

func xattrString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%x;", k, m[k])
	}
	return b.String()
}

func hashReader(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

func listXattrs(p string) (map[string]string, error) {
	out := map[string]string{}
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return out, err
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "system.") && !strings.HasPrefix(name, "system.posix_acl") {
			continue
		}
		vs, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, err
		}
		v := make([]byte, vs)
		vs, err = unix.Lgetxattr(p, name, v)
		if err != nil {
			return nil, err
		}
		out[name] = string(v[:vs])
	}
	return out, nil
}

// snapshotDir describes every path under root ("." is root itself).
func snapshotDir(t testing.TB, root string, skip func(string) bool) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	groups := map[[2]uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := entry{Type: st.Mode & unix.S_IFMT, Perm: st.Mode & 0o7777, UID: int(st.Uid), GID: int(st.Gid),
			Mtime: st.Mtim.Nano()}
		xs, err := listXattrs(p)
		if err != nil {
			return err
		}
		e.Xattrs = xattrString(xs)
		switch e.Type {
		case unix.S_IFREG:
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			e.Hash, e.Size, err = hashReader(f)
			f.Close()
			if err != nil {
				return err
			}
			k := [2]uint64{st.Dev, st.Ino}
			groups[k] = append(groups[k], rel)
		case unix.S_IFLNK:
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			e.Rdev = st.Rdev
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, paths := range groups {
		leader := slices.Min(paths)
		for _, p := range paths {
			e := out[p]
			e.LinkGroup = leader
			out[p] = e
		}
	}
	return out
}

// snapshotTar describes every entry of a tar stream.
func snapshotTar(t testing.TB, r io.Reader) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	links := map[string]string{} // hardlink path -> target path
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if name == "" {
			name = "."
		}
		e := entry{Perm: uint32(h.Mode) & 0o7777, UID: h.Uid, GID: h.Gid, Mtime: h.ModTime.UnixNano(), Size: 0}
		xs := map[string]string{}
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				xs[x] = v
			}
		}
		e.Xattrs = xattrString(xs)
		switch h.Typeflag {
		case tar.TypeReg:
			e.Type = unix.S_IFREG
			if e.Hash, e.Size, err = hashReader(tr); err != nil {
				t.Fatal(err)
			}
		case tar.TypeLink:
			links[name] = strings.TrimPrefix(h.Linkname, "./")
			continue
		case tar.TypeDir:
			e.Type = unix.S_IFDIR
		case tar.TypeSymlink:
			e.Type, e.Link = unix.S_IFLNK, h.Linkname
		case tar.TypeChar:
			e.Type, e.Rdev = unix.S_IFCHR, unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		case tar.TypeBlock:
			e.Type, e.Rdev = unix.S_IFBLK, unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		case tar.TypeFifo:
			e.Type = unix.S_IFIFO
		default:
			t.Fatalf("%s: unexpected tar type %q", h.Name, h.Typeflag)
		}
		out[name] = e
	}
	groups := map[string][]string{}
	for p, e := range out {
		if e.Type == unix.S_IFREG {
			groups[p] = append(groups[p], p)
		}
	}
	for p, target := range links {
		e, ok := out[target]
		if !ok {
			t.Fatalf("hardlink %s -> %s: target missing", p, target)
		}
		out[p] = e
		groups[target] = append(groups[target], p)
	}
	for _, paths := range groups {
		leader := slices.Min(paths)
		for _, p := range paths {
			e := out[p]
			e.LinkGroup = leader
			out[p] = e
		}
	}
	return out
}

// compareSnapshots fails the test on any difference; ignore lists fields
// per path that may legitimately differ (e.g. the root's mtime).
func compareSnapshots(t testing.TB, want, got map[string]entry) {
	t.Helper()
	bad := 0
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("missing %s", p)
			bad++
		} else if g != w {
			t.Errorf("%s differs:\n want %v\n  got %v", p, w, g)
			bad++
		}
		if bad > 10 {
			t.FailNow()
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected %s", p)
			bad++
		}
	}
	if bad == 0 {
		t.Logf("%d paths identical", len(want))
	}
}

// snapshotFIFO snapshots the tar a writer will stream into the FIFO at
// path; the result arrives when the writer closes it (nil if it cannot be
// opened).
func snapshotFIFO(t testing.TB, path string) <-chan map[string]entry {
	done := make(chan map[string]entry, 1)
	go func() {
		f, err := os.Open(path)
		if err != nil {
			done <- nil
			return
		}
		defer f.Close()
		done <- snapshotTar(t, f)
	}()
	return done
}
