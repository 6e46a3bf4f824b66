package snapshotterconverter

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// snapshotDir reads every path under root with lstat, readlink, llistxattr
// and full reads. It gives up after limit (a FUSE server that stops
// answering must not hang the test) and returns an error then.
func snapshotDir(root string, limit time.Duration) (map[string]rec, error) {
	type result struct {
		m   map[string]rec
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := walkDir(root)
		done <- result{m, err}
	}()
	select {
	case r := <-done:
		return r.m, r.err
	case <-time.After(limit):
		return nil, fmt.Errorf("reading %s took more than %v", root, limit)
	}
}

func walkDir(root string) (map[string]rec, error) {
	out := map[string]rec{}
	inodes := map[[2]uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		r := rec{Perm: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Mtime: st.Mtim.Sec}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			r.Nlink = st.Nlink
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if int64(len(b)) != st.Size {
				return fmt.Errorf("%s: stat size %d, read %d bytes", rel, st.Size, len(b))
			}
			r.Type, r.Size, r.Sum = "reg", st.Size, sum(b)
			if st.Nlink > 1 {
				k := [2]uint64{st.Dev, st.Ino}
				inodes[k] = append(inodes[k], rel)
			}
		case unix.S_IFDIR:
			r.Type = "dir"
		case unix.S_IFLNK:
			tgt, err := os.Readlink(p)
			if err != nil {
				return err
			}
			r.Type, r.Target, r.Size = "symlink", tgt, st.Size
		case unix.S_IFIFO:
			r.Type = "fifo"
		case unix.S_IFCHR:
			r.Type, r.Rdev = "char", fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		case unix.S_IFBLK:
			r.Type, r.Rdev = "block", fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		default:
			r.Type = fmt.Sprintf("mode %#o", st.Mode)
		}
		x, err := lxattrs(p)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		r.Xattrs = xattrString(x)
		out[rel] = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, names := range inodes {
		for _, n := range names {
			r := out[n]
			r.HardLinked = strings.Join(slices.DeleteFunc(slices.Sorted(slices.Values(names)), func(s string) bool { return s == n }), ",")
			out[n] = r
		}
	}
	return out, nil
}

func lxattrs(p string) (map[string]string, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("llistxattr: %w", err)
	}
	m := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 64<<10)
		k, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return nil, fmt.Errorf("lgetxattr %s: %w", name, err)
		}
		m[name] = string(v[:k])
	}
	return m, nil
}

// snapshotTar reads an OCI layer tar the way a runtime applies it.
func snapshotTar(r io.Reader) (map[string]rec, error) {
	out := map[string]rec{}
	links := map[string][]string{} // target -> names linking to it
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Clean("/"+h.Name), "/"), "/")
		if name == "" {
			continue
		}
		r := rec{Perm: uint32(h.Mode) & 0o7777, UID: uint32(h.Uid), GID: uint32(h.Gid), Mtime: h.ModTime.Unix()}
		if h.Typeflag != tar.TypeDir {
			r.Nlink = 1
		}
		x := map[string]string{}
		for k, v := range h.PAXRecords {
			if a, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				x[a] = v
			}
		}
		r.Xattrs = xattrString(x)
		switch h.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			r.Type, r.Size, r.Sum = "reg", int64(len(b)), sum(b)
		case tar.TypeDir:
			r.Type = "dir"
		case tar.TypeSymlink:
			r.Type, r.Target, r.Size = "symlink", h.Linkname, int64(len(h.Linkname))
		case tar.TypeLink:
			tgt := strings.TrimPrefix(filepath.Clean("/"+h.Linkname), "/")
			t, ok := out[tgt]
			if !ok {
				return nil, fmt.Errorf("hard link %s to %s, which the tar has not had yet", name, h.Linkname)
			}
			r = t
			links[tgt] = append(links[tgt], name)
		case tar.TypeFifo:
			r.Type = "fifo"
		case tar.TypeChar:
			r.Type, r.Rdev = "char", fmt.Sprintf("%d:%d", h.Devmajor, h.Devminor)
		case tar.TypeBlock:
			r.Type, r.Rdev = "block", fmt.Sprintf("%d:%d", h.Devmajor, h.Devminor)
		default:
			return nil, fmt.Errorf("%s: unexpected tar type %q", name, h.Typeflag)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("tar has %s twice", name)
		}
		out[name] = r
	}
	for tgt, names := range links {
		group := append([]string{tgt}, names...)
		for _, n := range group {
			r := out[n]
			r.HardLinked = strings.Join(slices.DeleteFunc(slices.Sorted(slices.Values(group)), func(s string) bool { return s == n }), ",")
			r.Nlink = uint64(len(group))
			out[n] = r
		}
	}
	return out, nil
}

// compareTrees fails the test on any path whose fields differ, or that
// only one side has.
func compareTrees(t *testing.T, what string, want, got map[string]rec) {
	t.Helper()
	var diffs []string
	for _, p := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("missing %s (want %v)", p, want[p]))
		case g != want[p]:
			diffs = append(diffs, fmt.Sprintf("%s:\n\t got %v\n\twant %v", p, g, want[p]))
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %s (%v)", p, got[p]))
		}
	}
	if len(diffs) > 0 {
		if len(diffs) > 30 {
			diffs = append(diffs[:30], fmt.Sprintf("... and %d more", len(diffs)-30))
		}
		t.Fatalf("%s differs from the source in %d places:\n%s", what, len(diffs), strings.Join(diffs, "\n"))
	}
	t.Logf("%s: %d paths equal to the source", what, len(want))
}

// readTarEntry returns the named file of a tar stream.
func readTarEntry(b []byte, name string) ([]byte, error) {
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err != nil {
			return nil, fmt.Errorf("%s not in the tar: %w", name, err)
		}
		if h.Name == name {
			return io.ReadAll(tr)
		}
	}
}
