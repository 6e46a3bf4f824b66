package rafs

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrLoop reports a directory that contains itself.
var ErrLoop = errors.New("rafs: directory loop")

// SkipDir returned by a WalkFunc for a directory skips its contents.
var SkipDir = errors.New("rafs: skip directory") //nolint:staticcheck // named like fs.SkipDir and filepath.SkipDir, whose role it has

// MaxWalkDepth bounds how deep Walk descends. A tree deeper than this
// cannot be reached by path on Linux anyway (each level costs at least two
// bytes of a 4096-byte PATH_MAX), and it keeps a hostile chain of
// directories from costing quadratic time in path building.
const MaxWalkDepth = 4096

// ErrTooDeep reports a tree deeper than MaxWalkDepth.
var ErrTooDeep = errors.New("rafs: directory tree too deep")

// WalkFunc is called for every path of an image, parents before children.
type WalkFunc func(p string, ino *Inode) error

// Walk visits every path of the image in depth-first name order, starting
// with "/". A directory reached twice (a loop or a directory hardlink) is
// an error wrapping ErrLoop; a tree deeper than MaxWalkDepth one wrapping
// ErrTooDeep. Walk does not recurse: its memory is the entries of the
// directories on the current path.
func (m *Image) Walk(fn WalkFunc) error {
	root, err := m.Inode(m.Root())
	if err != nil {
		return err
	}
	seen := map[uint64]bool{}
	// level is a directory being listed: its entries and the next one.
	type level struct {
		name string
		ents []DirEntry
		next int
	}
	enter := func(p string, ino *Inode) (*level, error) {
		if err := fn(p, ino); err != nil {
			if errors.Is(err, SkipDir) && ino.IsDir() {
				return nil, nil
			}
			return nil, err
		}
		if !ino.IsDir() {
			return nil, nil
		}
		if seen[ino.Nid] {
			return nil, fmt.Errorf("%w: directory inode %d reached again at %s", ErrLoop, ino.Nid, p)
		}
		seen[ino.Nid] = true
		ents, err := m.ReadDir(ino.Nid)
		if err != nil {
			return nil, err
		}
		return &level{ents: ents}, nil
	}
	top, err := enter("/", root)
	if err != nil || top == nil {
		return err
	}
	stack := []*level{top}
	dir := []byte{} // the path of the directory on top of the stack, "" for the root
	pathOf := func(name string) string {
		return string(dir) + "/" + name
	}
	for len(stack) > 0 {
		l := stack[len(stack)-1]
		if l.next == len(l.ents) {
			stack = stack[:len(stack)-1]
			dir = dir[:max(len(dir)-len(l.name)-1, 0)]
			continue
		}
		e := l.ents[l.next]
		l.next++
		if strings.ContainsAny(e.Name, "/\x00") {
			return formatErr("directory entry %q in %s", e.Name, pathOf(""))
		}
		p := pathOf(e.Name)
		child, err := m.Inode(e.Nid)
		if err != nil {
			return fmt.Errorf("rafs: %s: %w", p, err)
		}
		sub, err := enter(p, child)
		if err != nil {
			return err
		}
		if sub != nil {
			if len(stack) > MaxWalkDepth {
				return fmt.Errorf("%w: more than %d levels at %.200s...", ErrTooDeep, MaxWalkDepth, p) //nolint:staticcheck // the dots mark a path cut at 200 bytes
			}
			sub.name = e.Name
			stack = append(stack, sub)
			dir = append(append(dir, '/'), e.Name...)
		}
	}
	return nil
}

// LookupPath resolves an absolute or root-relative path without following
// symlinks and returns its nid.
func (m *Image) LookupPath(p string) (uint64, error) {
	nid := m.Root()
	for name := range strings.SplitSeq(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if name == "" {
			continue
		}
		next, err := m.Lookup(nid, name)
		if err != nil {
			return 0, fmt.Errorf("rafs: %s: %w", p, err)
		}
		nid = next
	}
	return nid, nil
}
