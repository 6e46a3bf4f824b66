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
	return dirLower{root: abs, path: abs}, nil
}

// dirLower is one path of the tree; st, when set, is its stat from the
// lookup that found it (the tree does not change).
type dirLower struct {
	root, path string
	st         *Stat
}

// at calls fn with the directory descriptor and name of d: AT_FDCWD and
// its path, or, for a path too long for one system call, a descriptor of
// its parent opened one component at a time from the root.
func (d dirLower) at(fn func(dirfd int, name string) error) error {
	if len(d.path) < unix.PathMax-1 {
		return fn(unix.AT_FDCWD, d.path)
	}
	rel, ok := strings.CutPrefix(d.path, d.root+"/")
	if !ok {
		return fmt.Errorf("%s: %w", d.path, unix.ENAMETOOLONG)
	}
	comps := strings.Split(rel, "/")
	fd, err := unix.Open(d.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	for _, c := range comps[:len(comps)-1] {
		next, err := unix.Openat(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return err
		}
		fd = next
	}
	defer unix.Close(fd)
	return fn(fd, comps[len(comps)-1])
}

func lstatAt(dirfd int, name string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, err
	}
	return &st, nil
}

func (d dirLower) Stat(ctx context.Context) (Stat, error) {
	if d.st != nil {
		return *d.st, nil
	}
	var st *unix.Stat_t
	err := d.at(func(dirfd int, name string) (err error) {
		st, err = lstatAt(dirfd, name)
		return err
	})
	if err != nil {
		return Stat{}, fmt.Errorf("lstat %s: %w", d.path, err)
	}
	return statFromUnix(st), nil
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
	c := dirLower{root: d.root, path: d.path + "/" + name}
	var st *unix.Stat_t
	err := c.at(func(dirfd int, name string) (err error) {
		st, err = lstatAt(dirfd, name)
		return err
	})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("lookup %s: %w", c.path, os.ErrNotExist)
		}
		return nil, fmt.Errorf("lookup %s: %w", c.path, err)
	}
	s := statFromUnix(st)
	c.st = &s
	return c, nil
}

// open opens d with flags (O_NOFOLLOW and O_CLOEXEC added).
func (d dirLower) open(flags int) (*os.File, error) {
	var f *os.File
	err := d.at(func(dirfd int, name string) error {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		f = os.NewFile(uintptr(fd), d.path)
		return nil
	})
	return f, err
}

func (d dirLower) ReadDir(ctx context.Context) ([]DirEntry, error) {
	f, err := d.open(unix.O_RDONLY | unix.O_DIRECTORY)
	if err != nil {
		return nil, fmt.Errorf("readdir %s: %w", d.path, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("readdir %s: %w", d.path, err)
	}
	out := make([]DirEntry, 0, len(names))
	for _, n := range names {
		st, err := lstatAt(int(f.Fd()), n)
		if err != nil {
			return nil, fmt.Errorf("readdir %s: %w", d.path, err)
		}
		out = append(out, DirEntry{Name: n, Mode: st.Mode & unix.S_IFMT, Ino: st.Ino})
	}
	return out, nil
}

func (d dirLower) Readlink(ctx context.Context) (string, error) {
	var target string
	err := d.at(func(dirfd int, name string) error {
		buf := make([]byte, unix.PathMax)
		k, err := unix.Readlinkat(dirfd, name, buf)
		target = string(buf[:max(k, 0)])
		return err
	})
	return target, err
}

func (d dirLower) Xattrs(ctx context.Context) ([]Xattr, error) {
	if len(d.path) < unix.PathMax-1 {
		return listXattrs(d.path)
	}
	var xs []Xattr
	err := d.at(func(dirfd int, name string) error {
		return withObj(dirfd, name, func(p string) (err error) {
			xs, err = listXattrsOf(p, unix.Listxattr, unix.Getxattr)
			return err
		})
	})
	return xs, err
}

func (d dirLower) Open(ctx context.Context) (LowerFile, error) {
	return d.open(unix.O_RDONLY)
}

// listXattrs reads every extended attribute of path without following a
// final symlink.
func listXattrs(path string) ([]Xattr, error) {
	return listXattrsOf(path, unix.Llistxattr, unix.Lgetxattr)
}

// listXattrsOf lists the xattrs of path with the list and get calls given.
func listXattrsOf(path string, list func(string, []byte) (int, error), get func(string, string, []byte) (int, error)) ([]Xattr, error) {
	buf := make([]byte, 4096)
	var n int
	for {
		var err error
		n, err = list(path, buf)
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
		v, err := getXattr(path, name, get)
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

func getXattr(path, name string, get func(string, string, []byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := get(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := get(path, name, nil)
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
