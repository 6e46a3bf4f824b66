package overlay

import (
	"slices"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// A SETATTR without a file handle (utimens, chown and chmod through a
// descriptor arrive so: only ftruncate carries one) of a file the overlay
// has open anyway goes through that open descriptor, sparing the upper
// file system a path walk per call.

func (n *node) addOpened(u *upperFile) {
	n.mu.Lock()
	n.opened = append(n.opened, u)
	n.mu.Unlock()
}

func (n *node) removeOpened(u *upperFile) {
	n.mu.Lock()
	if i := slices.Index(n.opened, u); i >= 0 {
		n.opened = slices.Delete(n.opened, i, i+1)
	}
	n.mu.Unlock()
}

// anyOpened returns one open upper handle of n, or nil.
func (n *node) anyOpened() *upperFile {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.opened) == 0 {
		return nil
	}
	return n.opened[len(n.opened)-1]
}

// openedFor returns an open upper handle of n, a node with no lower
// object, to apply in through, or nil: none is open, or the request
// changes the size (left to the path's copy-up logic) or mode and owner
// together (whose order matters).
func (n *node) openedFor(in *fuse.SetAttrIn) *upperFile {
	if in.Valid&fuse.FATTR_SIZE != 0 || in.Valid&fuse.FATTR_MODE != 0 && in.Valid&(fuse.FATTR_UID|fuse.FATTR_GID) != 0 {
		return nil
	}
	if n.getLower() != nil {
		return nil
	}
	return n.anyOpened()
}
