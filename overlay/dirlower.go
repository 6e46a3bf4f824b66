package overlay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// NewDirLower returns a Lower reading the directory tree at dir. The tree
// must not change while it is in use.
func NewDirLower(dir string) (Lower, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("overlay: lower dir: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(abs, &st); err != nil {
		return nil, fmt.Errorf("overlay: lower dir %s: %w", abs, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("overlay: lower dir %s: %w", abs, unix.ENOTDIR)
	}
	return dirLower{path: abs}, nil
}

// dirLower is one path of the tree; st, when set, is its stat from the
// lookup that found it (the tree does not change).
type dirLower struct {
	path string
	st   *Stat
}

func (d dirLower) Stat(ctx context.Context) (Stat, error) {
	if d.st != nil {
		return *d.st, nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(d.path, &st); err != nil {
		return Stat{}, fmt.Errorf("lstat %s: %w", d.path, err)
	}
	return statFromUnix(&st), nil
}

func statFromUnix(st *unix.Stat_t) Stat {
	return Stat{
		Ino: st.Ino, Mode: st.Mode, Nlink: uint32(st.Nlink), UID: st.Uid, GID: st.Gid,
		Rdev: st.Rdev, Size: st.Size,
		Atime: time.Unix(st.Atim.Unix()), Mtime: time.Unix(st.Mtim.Unix()), Ctime: time.Unix(st.Ctim.Unix()),
	}
}

func (d dirLower) Lookup(ctx context.Context, name string) (Lower, error) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return nil, fmt.Errorf("lookup %q: %w", name, os.ErrNotExist)
	}
	p := filepath.Join(d.path, name)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("lookup %s: %w", p, os.ErrNotExist)
		}
		return nil, fmt.Errorf("lookup %s: %w", p, err)
	}
	s := statFromUnix(&st)
	return dirLower{path: p, st: &s}, nil
}

func (d dirLower) ReadDir(ctx context.Context) ([]DirEntry, error) {
	f, err := os.Open(d.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("readdir %s: %w", d.path, err)
	}
	out := make([]DirEntry, 0, len(names))
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(d.path, n), &st); err != nil {
			return nil, fmt.Errorf("readdir %s: %w", d.path, err)
		}
		out = append(out, DirEntry{Name: n, Mode: st.Mode & unix.S_IFMT, Ino: st.Ino})
	}
	return out, nil
}

func (d dirLower) Readlink(ctx context.Context) (string, error) {
	return os.Readlink(d.path)
}

func (d dirLower) Xattrs(ctx context.Context) ([]Xattr, error) {
	return listXattrs(d.path)
}

func (d dirLower) Open(ctx context.Context) (LowerFile, error) {
	return os.OpenFile(d.path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
}

// listXattrs reads every extended attribute of path without following a
// final symlink.
func listXattrs(path string) ([]Xattr, error) {
	buf := make([]byte, 4096)
	var n int
	for {
		var err error
		n, err = unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listxattr %s: %w", path, err)
		}
		break
	}
	var out []Xattr
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		v, err := getXattr(path, name)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, Xattr{Name: name, Value: v})
	}
	return out, nil
}

func getXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Lgetxattr(path, name, nil)
			if err != nil {
				return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err)
			}
			buf = make([]byte, sz+1)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err)
		}
		return buf[:n], nil
	}
}
