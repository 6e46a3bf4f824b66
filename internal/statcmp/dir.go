package statcmp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

const sIFDIR = unix.S_IFDIR

// DirOption adjusts Dir.
type DirOption func(*dirConfig)

type dirConfig struct{ skip func(rel string) bool }

// Skip leaves out the paths (and subtrees) skip reports.
func Skip(skip func(rel string) bool) DirOption { return func(c *dirConfig) { c.skip = skip } }

// Dir describes every path under root with lstat(2), llistxattr(2),
// readlink(2) and the sha256 of every regular file, and groups
// non-directories that share an inode.
func Dir(root string, opts ...DirOption) (Snapshot, error) {
	c := &dirConfig{}
	for _, o := range opts {
		o(c)
	}
	out := Snapshot{}
	groups := map[[2]uint64][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if c.skip != nil && c.skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("statcmp: %w", err)
		}
		e := Entry{Type: st.Mode & unix.S_IFMT, Perm: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Size: st.Size,
			Nlink: uint64(st.Nlink), Mtime: st.Mtim.Nano(), Atime: st.Atim.Nano(), Ctime: st.Ctim.Nano(), Blocks: st.Blocks}
		xs, err := listXattrs(p)
		if err != nil {
			return err
		}
		e.Xattrs = xattrString(xs)
		switch e.Type {
		case unix.S_IFREG:
			if e.Hash, err = hashFile(p); err != nil {
				return err
			}
		case unix.S_IFLNK:
			if e.Target, err = os.Readlink(p); err != nil {
				return fmt.Errorf("statcmp: %w", err)
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			e.Rdev = st.Rdev
		}
		if e.Type != unix.S_IFDIR {
			k := [2]uint64{st.Dev, st.Ino}
			groups[k] = append(groups[k], rel)
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, paths := range groups {
		setGroup(out, paths)
	}
	return out, nil
}

func setGroup(s Snapshot, paths []string) {
	sort.Strings(paths)
	for _, p := range paths {
		e := s[p]
		e.LinkGroup = paths[0]
		s[p] = e
	}
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("statcmp: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("statcmp: read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// keepXattr filters out system.* names other than POSIX ACLs: file systems
// synthesise those (e.g. system.nfs4_acl) rather than store them.
func keepXattr(name string) bool {
	return name != "" && (!strings.HasPrefix(name, "system.") || strings.HasPrefix(name, "system.posix_acl"))
}

func listXattrs(p string) (map[string]string, error) {
	out := map[string]string{}
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		if err != nil {
			err = fmt.Errorf("statcmp: llistxattr %s: %w", p, err)
		}
		return out, err
	}
	buf := make([]byte, sz)
	if sz, err = unix.Llistxattr(p, buf); err != nil {
		return nil, fmt.Errorf("statcmp: llistxattr %s: %w", p, err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if !keepXattr(name) {
			continue
		}
		vs, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, fmt.Errorf("statcmp: lgetxattr %s %s: %w", p, name, err)
		}
		v := make([]byte, vs)
		if vs, err = unix.Lgetxattr(p, name, v); err != nil {
			return nil, fmt.Errorf("statcmp: lgetxattr %s %s: %w", p, name, err)
		}
		out[name] = string(v[:vs])
	}
	return out, nil
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
