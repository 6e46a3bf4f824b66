package rafs

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
)

// FS returns an io/fs view of the image reading file data through src.
// Open follows symlinks (absolute targets resolve from the image root);
// Lstat and ReadLink do not. FileInfo.Sys returns the *Inode.
func (m *Image) FS(ctx context.Context, src ChunkSource) fs.FS {
	return &imageFS{m: m, ctx: ctx, src: src}
}

type imageFS struct {
	m   *Image
	ctx context.Context
	src ChunkSource
}

const maxSymlinkHops = 40

// resolve walks name from the root; follow says whether a final symlink
// is followed.
func (f *imageFS) resolve(op, name string, follow bool) (*Inode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	hops := 0
	var walk func(dir uint64, parts []string) (*Inode, error)
	walk = func(dir uint64, parts []string) (*Inode, error) {
		cur, err := f.m.Inode(dir)
		if err != nil {
			return nil, err
		}
		stack := []uint64{dir}
		for i := 0; i < len(parts); i++ {
			part := parts[i]
			switch part {
			case "", ".":
				continue
			case "..":
				if len(stack) > 1 {
					stack = stack[:len(stack)-1]
				}
				if cur, err = f.m.Inode(stack[len(stack)-1]); err != nil {
					return nil, err
				}
				continue
			}
			if !cur.IsDir() {
				return nil, fs.ErrNotExist
			}
			nid, err := f.m.Lookup(cur.Nid, part)
			if err != nil {
				if errors.Is(err, ErrNotExist) {
					return nil, fs.ErrNotExist
				}
				return nil, err
			}
			next, err := f.m.Inode(nid)
			if err != nil {
				return nil, err
			}
			last := i == len(parts)-1
			if next.IsSymlink() && (!last || follow) {
				if hops++; hops > maxSymlinkHops {
					return nil, errors.New("too many levels of symbolic links")
				}
				target, err := f.m.Readlink(nid)
				if err != nil {
					return nil, err
				}
				rest := append(strings.Split(target, "/"), parts[i+1:]...)
				if strings.HasPrefix(target, "/") {
					return walk(f.m.Root(), rest)
				}
				parts = rest
				i = -1
				continue
			}
			cur = next
			stack = append(stack, nid)
		}
		return cur, nil
	}
	var parts []string
	if name != "." {
		parts = strings.Split(name, "/")
	}
	ino, err := walk(f.m.Root(), parts)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return ino, nil
}

func (f *imageFS) Open(name string) (fs.File, error) {
	ino, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	info := &fileInfo{name: path.Base(name), ino: ino}
	if ino.IsDir() {
		return &dirFile{fs: f, info: info}, nil
	}
	file := &regFile{info: info}
	if ino.IsReg() {
		r, err := f.m.FileReader(f.ctx, f.src, ino.Nid)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		file.r = io.NewSectionReader(r, 0, r.Size())
	} else {
		file.r = io.NewSectionReader(eofReader{}, 0, 0)
	}
	return file, nil
}

func (f *imageFS) Stat(name string) (fs.FileInfo, error) {
	ino, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(name), ino: ino}, nil
}

func (f *imageFS) Lstat(name string) (fs.FileInfo, error) {
	ino, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(name), ino: ino}, nil
}

func (f *imageFS) ReadLink(name string) (string, error) {
	ino, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if !ino.IsSymlink() {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	t, err := f.m.Readlink(ino.Nid)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: err}
	}
	return t, nil
}

func (f *imageFS) ReadDir(name string) ([]fs.DirEntry, error) {
	ino, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !ino.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: ErrNotDir}
	}
	ents, err := f.m.ReadDir(ino.Nid)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		child, err := f.m.Inode(e.Nid)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
		}
		out = append(out, fs.FileInfoToDirEntry(&fileInfo{name: e.Name, ino: child}))
	}
	return out, nil
}

type eofReader struct{}

func (eofReader) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }

type fileInfo struct {
	name string
	ino  *Inode
}

func (i *fileInfo) Name() string {
	if i.name == "." || i.name == "/" {
		return "."
	}
	return i.name
}
func (i *fileInfo) Size() int64        { return int64(i.ino.Size) }
func (i *fileInfo) Mode() fs.FileMode  { return i.ino.FileMode() }
func (i *fileInfo) ModTime() time.Time { return i.ino.ModTime() }
func (i *fileInfo) IsDir() bool        { return i.ino.IsDir() }
func (i *fileInfo) Sys() any           { return i.ino }

type regFile struct {
	info *fileInfo
	r    *io.SectionReader
}

func (f *regFile) Stat() (fs.FileInfo, error)                { return f.info, nil }
func (f *regFile) Read(p []byte) (int, error)                { return f.r.Read(p) }
func (f *regFile) ReadAt(p []byte, off int64) (int, error)   { return f.r.ReadAt(p, off) }
func (f *regFile) Seek(off int64, whence int) (int64, error) { return f.r.Seek(off, whence) }
func (f *regFile) Close() error                              { return nil }

type dirFile struct {
	fs   *imageFS
	info *fileInfo
	ents []fs.DirEntry
	read bool
	pos  int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}
func (d *dirFile) Close() error { return nil }

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		ents, err := d.fs.m.ReadDir(d.info.ino.Nid)
		if err != nil {
			return nil, err
		}
		d.ents = make([]fs.DirEntry, 0, len(ents))
		for _, e := range ents {
			child, err := d.fs.m.Inode(e.Nid)
			if err != nil {
				return nil, err
			}
			d.ents = append(d.ents, fs.FileInfoToDirEntry(&fileInfo{name: e.Name, ino: child}))
		}
		d.read = true
	}
	rest := d.ents[d.pos:]
	if n <= 0 {
		d.pos = len(d.ents)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	k := min(n, len(rest))
	d.pos += k
	return rest[:k], nil
}
