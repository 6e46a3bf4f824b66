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
var SkipDir = errors.New("rafs: skip directory")

// WalkFunc is called for every path of an image, parents before children.
type WalkFunc func(p string, ino *Inode) error

// Walk visits every path of the image in depth-first name order, starting
// with "/". A directory reached twice (a loop or a directory hardlink) is
// an error wrapping ErrLoop.
func (m *Image) Walk(fn WalkFunc) error {
	root, err := m.Inode(m.Root())
	if err != nil {
		return err
	}
	seen := map[uint64]bool{}
	return m.walk("/", root, seen, fn)
}

func (m *Image) walk(p string, ino *Inode, seen map[uint64]bool, fn WalkFunc) error {
	if err := fn(p, ino); err != nil {
		if errors.Is(err, SkipDir) && ino.IsDir() {
			return nil
		}
		return err
	}
	if !ino.IsDir() {
		return nil
	}
	if seen[ino.Nid] {
		return fmt.Errorf("%w: directory inode %d reached again at %s", ErrLoop, ino.Nid, p)
	}
	seen[ino.Nid] = true
	ents, err := m.ReadDir(ino.Nid)
	if err != nil {
		return err
	}
	for _, e := range ents {
		child, err := m.Inode(e.Nid)
		if err != nil {
			return fmt.Errorf("rafs: %s: %w", path.Join(p, e.Name), err)
		}
		if err := m.walk(path.Join(p, e.Name), child, seen, fn); err != nil {
			return err
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
