package overlay

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// A SETATTR without a file handle (utimens, chown and chmod through a
// descriptor arrive so: only ftruncate carries one) or a GETXATTR (which
// never has one) of a file the overlay has open anyway goes through that
// open descriptor, sparing the upper file system a path walk per call.
// Release takes a handle off the list before closing it, so a descriptor
// used under n.mu stays open.

// getxattrOpened reads the xattr attr into dest through an open upper
// handle of n; ok false: none is open. With ERANGE, k is the size needed.
func (n *node) getxattrOpened(attr string, dest []byte) (k uint32, ok bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.opened) == 0 {
		return 0, false, nil
	}
	fd, ok := n.opened[len(n.opened)-1].PassthroughFd()
	if !ok {
		return 0, false, nil
	}
	sz, err := unix.Fgetxattr(fd, attr, dest)
	if errors.Is(err, unix.ERANGE) {
		if sz, err2 := unix.Fgetxattr(fd, attr, nil); err2 == nil {
			return uint32(sz), true, err
		}
	}
	if err != nil {
		return 0, true, fmt.Errorf("getxattr %s: %w", attr, err)
	}
	return uint32(sz), true, nil
}

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
// changes the size (left to the path's copy-up logic), mode and owner
// together (whose order matters) or drops set-ID bits.
func (n *node) openedFor(in *fuse.SetAttrIn) *upperFile {
	if in.Valid&fuse.FATTR_SIZE != 0 || in.Valid&fuse.FATTR_MODE != 0 && in.Valid&(fuse.FATTR_UID|fuse.FATTR_GID) != 0 {
		return nil
	}
	if wantsKill(in) && !chowns(in) {
		return nil // dropping set-ID bits uses the descriptor outside n.mu
	}
	if n.getLower() != nil {
		return nil
	}
	return n.anyOpened()
}
