// Package tree is the in-memory filesystem tree a RAFS image is built from
// and merged into: inodes with attributes, xattrs and chunk lists, linked
// by named entries. Builders fill it from a directory or a tar stream,
// merge combines several, and the bootstrap writer lays it out on disk.
package tree

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/gonydus/nydus/rafs/layout"
)

// Tree is a whole filesystem plus the blobs its chunks live in.
type Tree struct {
	Root *Inode
	// Blobs lists the data blobs chunks may refer to, by blob index. The
	// bootstrap writer drops blobs no chunk refers to and renumbers the rest.
	Blobs []*layout.BlobEntry
	// ChunkSize is the image chunk size (power of two).
	ChunkSize uint32
	// Flags holds the compressor and digester bits plus EXPLICIT_UID_GID
	// and INLINED_CHUNK_DIGEST as the builder wants them.
	Flags layout.SuperFlags
	// Prefetch lists absolute paths to record in the prefetch table.
	Prefetch []string
}

// Entry is a name in a directory.
type Entry struct {
	Name  string
	Inode *Inode
}

// Inode holds what a file is. Hard-linked regular files share one Inode.
type Inode struct {
	Mode      uint32 // st_mode, type bits included
	UID, GID  uint32
	Mtime     uint64
	MtimeNsec uint32
	Size      uint64
	Rdev      uint64 // device number as unix.Mkdev encodes it
	Target    string // symlink target
	Xattrs    []layout.Xattr
	// Chunks of a regular file in file order. Entries may be shared
	// between files (dedup); their fields are final once the blob writer
	// that produced them has finished.
	Chunks []*layout.ChunkInfo
	// Children of a directory, sorted by name bytes, without "." and "..".
	Children []*Entry
}

// NewDir returns an empty directory inode with the given permission bits.
func NewDir(perm uint32) *Inode { return &Inode{Mode: layout.ModeDir | perm&0o7777} }

// IsDir reports whether the inode is a directory.
func (i *Inode) IsDir() bool { return i.Mode&layout.ModeTypeMask == layout.ModeDir }

// IsReg reports whether the inode is a regular file.
func (i *Inode) IsReg() bool { return i.Mode&layout.ModeTypeMask == layout.ModeReg }

// IsSymlink reports whether the inode is a symbolic link.
func (i *Inode) IsSymlink() bool { return i.Mode&layout.ModeTypeMask == layout.ModeSymlink }

// Child returns the entry called name, or nil.
func (i *Inode) Child(name string) *Entry {
	k, ok := slices.BinarySearchFunc(i.Children, name, func(e *Entry, n string) int { return strings.Compare(e.Name, n) })
	if !ok {
		return nil
	}
	return i.Children[k]
}

// SetChild adds or replaces the entry called name.
func (i *Inode) SetChild(name string, child *Inode) *Entry {
	k, ok := slices.BinarySearchFunc(i.Children, name, func(e *Entry, n string) int { return strings.Compare(e.Name, n) })
	if ok {
		i.Children[k].Inode = child
		return i.Children[k]
	}
	e := &Entry{Name: name, Inode: child}
	i.Children = slices.Insert(i.Children, k, e)
	return e
}

// RemoveChild deletes the entry called name and reports whether it existed.
func (i *Inode) RemoveChild(name string) bool {
	k, ok := slices.BinarySearchFunc(i.Children, name, func(e *Entry, n string) int { return strings.Compare(e.Name, n) })
	if ok {
		i.Children = slices.Delete(i.Children, k, k+1)
	}
	return ok
}

// Xattr returns the value of the named xattr.
func (i *Inode) Xattr(name string) ([]byte, bool) {
	for _, x := range i.Xattrs {
		if x.Name == name {
			return x.Value, true
		}
	}
	return nil, false
}

// SetXattr sets an xattr, keeping Xattrs sorted by name.
func (i *Inode) SetXattr(name string, value []byte) {
	k, ok := slices.BinarySearchFunc(i.Xattrs, name, func(x layout.Xattr, n string) int { return strings.Compare(x.Name, n) })
	if ok {
		i.Xattrs[k].Value = value
		return
	}
	i.Xattrs = slices.Insert(i.Xattrs, k, layout.Xattr{Name: name, Value: value})
}

// RemoveXattr deletes an xattr.
func (i *Inode) RemoveXattr(name string) {
	i.Xattrs = slices.DeleteFunc(i.Xattrs, func(x layout.Xattr) bool { return x.Name == name })
}

// CleanPath turns an archive or user path into a slash-separated path
// relative to the root, rejecting paths that climb out of it.
func CleanPath(p string) (string, error) {
	c := path.Clean("/" + p)
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return "", fmt.Errorf("path %q escapes the root", p)
		}
	}
	return strings.TrimPrefix(c, "/"), nil
}

// Lookup finds the inode at a slash-separated path ("" or "/" is the root).
// It does not follow symlinks.
func (t *Tree) Lookup(p string) *Inode {
	cur := t.Root
	for _, elem := range strings.Split(strings.Trim(p, "/"), "/") {
		if elem == "" || elem == "." {
			continue
		}
		if cur == nil || !cur.IsDir() {
			return nil
		}
		e := cur.Child(elem)
		if e == nil {
			return nil
		}
		cur = e.Inode
	}
	return cur
}

// WalkFunc is called for every entry; p is the slash-separated path from
// the root ("/" for the root itself).
type WalkFunc func(p string, ino *Inode) error

// Walk visits the tree depth-first in name order, parents before children.
func (t *Tree) Walk(fn WalkFunc) error {
	return walk("/", t.Root, fn)
}

func walk(p string, ino *Inode, fn WalkFunc) error {
	if err := fn(p, ino); err != nil {
		return err
	}
	for _, e := range ino.Children {
		if err := walk(path.Join(p, e.Name), e.Inode, fn); err != nil {
			return err
		}
	}
	return nil
}
