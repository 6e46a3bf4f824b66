package statcmp

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// Tar describes the tree a tar stream extracts to, as Dir would describe
// the extraction: hardlinks share their target's entry and group, link
// counts are what extraction makes them (2 + subdirectories for a
// directory, the number of names for anything else), and a symlink's size
// is its target's length. A tar does not say how big a directory is: its
// Size is 0, so compare tar snapshots with IgnoreDirSize. Directories the
// stream only implies are not described.
func Tar(r io.Reader) (Snapshot, error) {
	out := Snapshot{}
	links := map[string]string{} // hardlink path -> target path
	var order []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("statcmp: tar: %w", err)
		}
		name := cleanTarName(h.Name)
		e := Entry{Perm: uint32(h.Mode) & 0o7777, UID: uint32(h.Uid), GID: uint32(h.Gid), Mtime: h.ModTime.UnixNano()}
		xs := map[string]string{}
		for k, v := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && keepXattr(x) {
				xs[x] = v
			}
		}
		e.Xattrs = xattrString(xs)
		switch h.Typeflag {
		case tar.TypeReg:
			e.Type = unix.S_IFREG
			hs := sha256.New()
			if e.Size, err = io.Copy(hs, tr); err != nil {
				return nil, fmt.Errorf("statcmp: tar %s: %w", name, err)
			}
			e.Hash = hex.EncodeToString(hs.Sum(nil))
		case tar.TypeLink:
			links[name] = cleanTarName(h.Linkname)
			order = append(order, name)
			continue
		case tar.TypeDir:
			e.Type = unix.S_IFDIR
		case tar.TypeSymlink:
			e.Type, e.Target, e.Size = unix.S_IFLNK, h.Linkname, int64(len(h.Linkname))
		case tar.TypeChar:
			e.Type, e.Rdev = unix.S_IFCHR, unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		case tar.TypeBlock:
			e.Type, e.Rdev = unix.S_IFBLK, unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		case tar.TypeFifo:
			e.Type = unix.S_IFIFO
		default:
			return nil, fmt.Errorf("statcmp: tar %s: unexpected type %q", h.Name, h.Typeflag)
		}
		out[name] = e
		order = append(order, name)
	}
	groups := map[string][]string{} // target -> names
	for p, e := range out {
		if e.Type != unix.S_IFDIR {
			groups[p] = append(groups[p], p)
		}
	}
	for _, p := range order {
		target, ok := links[p]
		if !ok {
			continue
		}
		for { // a link to a link names the same inode
			t2, ok := links[target]
			if !ok {
				break
			}
			target = t2
		}
		e, ok := out[target]
		if !ok || e.Type == unix.S_IFDIR {
			return nil, fmt.Errorf("statcmp: tar hardlink %s -> %s: no such file earlier in the stream", p, target)
		}
		out[p] = e
		groups[target] = append(groups[target], p)
	}
	for _, paths := range groups {
		setGroup(out, paths)
		for _, p := range paths {
			e := out[p]
			e.Nlink = uint64(len(paths))
			out[p] = e
		}
	}
	for p, e := range out {
		if e.Type != unix.S_IFDIR {
			continue
		}
		e.Nlink = 2
		out[p] = e
	}
	for p, e := range out {
		if e.Type == unix.S_IFDIR && p != "." {
			if parent, ok := out[parentOf(p)]; ok {
				parent.Nlink++
				out[parentOf(p)] = parent
			}
		}
	}
	return out, nil
}

func cleanTarName(n string) string {
	c := path.Clean("/" + n)
	if c == "/" {
		return "."
	}
	return strings.TrimPrefix(c, "/")
}

func parentOf(p string) string {
	d := path.Dir(p)
	if d == "/" || d == "" {
		return "."
	}
	return d
}
