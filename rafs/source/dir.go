package source

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// FromDir builds a tree from the directory dir, streaming file data to w.
// Hardlinked regular files share one tree.Inode; other types with several
// links become separate inodes, as RAFS stores them.
func FromDir(ctx context.Context, dir string, w FileWriter, opts ...Option) (*tree.Tree, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	d := &dirWalker{cfg: cfg, w: w, links: map[[2]uint64]*tree.Inode{}}
	root, err := d.inode(ctx, dir)
	if err != nil {
		return nil, err
	}
	if !root.IsDir() {
		return nil, fmt.Errorf("source: %s is not a directory", dir)
	}
	return &tree.Tree{Root: root, Prefetch: cleanPrefetch(cfg.prefetch)}, nil
}

type dirWalker struct {
	cfg     *config
	w       FileWriter
	links   map[[2]uint64]*tree.Inode
	entries int
}

func (d *dirWalker) inode(ctx context.Context, p string) (*tree.Inode, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.entries++
	if d.entries > d.cfg.maxEntries {
		return nil, fmt.Errorf("source: more than %d entries", d.cfg.maxEntries)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, fmt.Errorf("source: lstat %s: %w", p, err)
	}
	typ := st.Mode & unix.S_IFMT
	key := [2]uint64{st.Dev, st.Ino}
	// Any non-directory may have several names (regular files, symlinks,
	// devices, FIFOs, sockets): they share one inode, as upstream and the
	// kernel's EROFS do.
	linked := typ != unix.S_IFDIR && st.Nlink > 1
	if linked {
		if ino, ok := d.links[key]; ok {
			return ino, nil
		}
	}
	ino := &tree.Inode{Mode: st.Mode, UID: st.Uid, GID: st.Gid,
		Mtime: uint64(st.Mtim.Sec), MtimeNsec: uint32(st.Mtim.Nsec)} // before 1970: two's complement, as the kernel reads it
	xs, err := d.xattrs(p)
	if err != nil {
		return nil, err
	}
	ino.Xattrs = xs
	switch typ {
	case unix.S_IFREG:
		if err := d.file(p, &st, ino); err != nil {
			return nil, err
		}
	case unix.S_IFDIR:
		names, err := readNames(p)
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			child, err := d.inode(ctx, filepath.Join(p, name))
			if err != nil {
				return nil, err
			}
			ino.Children = append(ino.Children, &tree.Entry{Name: name, Inode: child})
		}
	case unix.S_IFLNK:
		t, err := os.Readlink(p)
		if err != nil {
			return nil, fmt.Errorf("source: readlink %s: %w", p, err)
		}
		ino.Target = t
	case unix.S_IFCHR, unix.S_IFBLK:
		ino.Rdev = st.Rdev
	case unix.S_IFIFO, unix.S_IFSOCK:
	default:
		return nil, fmt.Errorf("source: %s has unknown file type %#o", p, st.Mode)
	}
	if linked {
		d.links[key] = ino
	}
	return ino, nil
}

// readNames lists a directory sorted by name bytes.
func readNames(p string) ([]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("source: read directory %s: %w", p, err)
	}
	sort.Strings(names)
	return names, nil
}

// file streams a regular file to the writer; a file that changes size
// while it is read is an error, never a silently different image.
func (d *dirWalker) file(p string, st *unix.Stat_t, ino *tree.Inode) error {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer f.Close()
	var fst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
		return fmt.Errorf("source: fstat %s: %w", p, err)
	}
	if fst.Ino != st.Ino || fst.Size != st.Size {
		return fmt.Errorf("source: %s changed while it was read", p)
	}
	r := &exactReader{r: f, left: st.Size, name: p}
	chunks, err := d.w.WriteFile(r, st.Size)
	if err != nil {
		return fmt.Errorf("source: %s: %w", p, err)
	}
	var one [1]byte
	if n, _ := f.Read(one[:]); n > 0 {
		return fmt.Errorf("source: %s grew while it was read", p)
	}
	ino.Size = uint64(st.Size)
	ino.Chunks = chunks
	return nil
}

// exactReader reports a file that shrinks under the reader.
type exactReader struct {
	r    io.Reader
	left int64
	name string
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("source: %s shrank while it was read", e.name)
	}
	return n, err
}

// xattrs reads the extended attributes RAFS can store.
func (d *dirWalker) xattrs(p string) ([]layout.Xattr, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil {
		if err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
			return nil, nil
		}
		return nil, fmt.Errorf("source: listxattr %s: %w", p, err)
	}
	if sz == 0 {
		return nil, nil
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("source: listxattr %s: %w", p, err)
	}
	var out []layout.Xattr
	for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		if _, _, err := layout.SplitXattrName(name); err != nil {
			d.cfg.log.Warn("source: skipping xattr RAFS cannot store", "path", p, "xattr", name)
			continue
		}
		v, err := lgetxattr(p, name)
		if err != nil {
			return nil, err
		}
		out = append(out, layout.Xattr{Name: name, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func lgetxattr(p, name string) ([]byte, error) {
	for size := 256; ; size *= 4 {
		v := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, v)
		if err == unix.ERANGE && size < 1<<20 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("source: getxattr %s %s: %w", p, name, err)
		}
		return v[:n], nil
	}
}
