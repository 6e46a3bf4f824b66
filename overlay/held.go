package overlay

import (
	"container/list"
	"fmt"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Upper objects are never reached through a path string joined up from
// the upper root: such a path may be longer than PATH_MAX (a deep tree
// built by cd-ing down, which the kernel allows), and a container that
// swaps a directory for a symlink while the daemon walks the path could
// lead the root daemon out of the upper directory. Instead each directory
// node holds an O_PATH descriptor of its upper directory, opened one
// component at a time, without following symlinks, from its parent's;
// every upper object is then reached as (descriptor of its directory,
// one name). The descriptors are bounded: the least recently used ones
// not in use are closed, and opened again from the nearest held ancestor
// when next needed.

// defaultHeldDirs is how many upper directory descriptors an FS keeps
// open by default.
const defaultHeldDirs = 4096

// heldDirs is the set of upper directory descriptors the nodes hold.
type heldDirs struct {
	mu  sync.Mutex
	max int
	lru list.List // of *dirRef, the most recently used first
}

// dirRef is a held descriptor of an upper directory. fd stays open while
// the caller holds a reference (from upperDir until release).
type dirRef struct {
	fd      int
	refs    int // under heldDirs.mu
	h       *heldDirs
	n       *node
	el      *list.Element
	dropped bool // taken off its node while in use: closed at the last release
}

// rootRef is the upper root's descriptor, held for the life of the FS.
func (f *FS) rootRef() *dirRef { return &dirRef{fd: f.upperFd, refs: -1} }

func (r *dirRef) release() {
	if r == nil || r.refs < 0 {
		return
	}
	h := r.h
	h.mu.Lock()
	r.refs--
	closeIt := r.refs == 0 && r.dropped
	h.mu.Unlock()
	if closeIt {
		unix.Close(r.fd)
	}
}

// upperDir returns a reference to the descriptor of n's upper directory,
// opened if need be from its parent's (and so on up to the nearest held
// ancestor). It fails with ENOENT or ENOTDIR when n has no upper
// directory (it is not copied up yet), and with ENOENT when n is unlinked.
func (n *node) upperDir() (*dirRef, error) {
	f := n.fs
	if n == f.root {
		return f.rootRef(), nil
	}
	h := &f.held
	h.mu.Lock()
	if r := n.held; r != nil {
		r.refs++
		h.lru.MoveToFront(r.el)
		h.mu.Unlock()
		return r, nil
	}
	h.mu.Unlock()
	name, parent := n.Parent()
	pn := asNode(parent)
	if pn == nil {
		return nil, fmt.Errorf("node is unlinked: %w", syscall.ENOENT)
	}
	pr, err := pn.upperDir()
	if err != nil {
		return nil, err
	}
	fd, err := unix.Openat(pr.fd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	pr.release()
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := n.held; r != nil { // another request opened it meanwhile
		unix.Close(fd)
		r.refs++
		h.lru.MoveToFront(r.el)
		return r, nil
	}
	r := &dirRef{fd: fd, refs: 1, h: h, n: n}
	r.el = h.lru.PushFront(r)
	n.held = r
	h.evict()
	return r, nil
}

// evict closes the least recently used descriptors not in use until at
// most max are held. The caller holds h.mu.
func (h *heldDirs) evict() {
	for el := h.lru.Back(); el != nil && h.lru.Len() > h.max; {
		r := el.Value.(*dirRef)
		prev := el.Prev()
		if r.refs == 0 {
			h.lru.Remove(el)
			r.n.held = nil
			unix.Close(r.fd)
		}
		el = prev
	}
}

// dropHeld closes n's descriptor (at its last release if in use): n's upper
// directory is no longer where its descriptor points.
func (n *node) dropHeld() {
	h := &n.fs.held
	h.mu.Lock()
	r := n.held
	if r == nil {
		h.mu.Unlock()
		return
	}
	n.held = nil
	h.lru.Remove(r.el)
	closeIt := r.refs == 0
	r.dropped = !closeIt
	h.mu.Unlock()
	if closeIt {
		unix.Close(r.fd)
	}
}

// closeAll closes every held descriptor (at unmount).
func (h *heldDirs) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for el := h.lru.Front(); el != nil; el = el.Next() {
		r := el.Value.(*dirRef)
		r.n.held = nil
		if r.refs == 0 {
			unix.Close(r.fd)
		} else {
			r.dropped = true
		}
	}
	h.lru.Init()
}

// at is where a node's own upper object is: the descriptor of its upper
// parent directory and its name there ("." for the root).
type at struct {
	dir  *dirRef
	name string
}

func (a at) release() { a.dir.release() }

// upperAt returns where n's upper object is (or would be), once n's
// parent directory is in the upper tree.
func (n *node) upperAt() (at, error) {
	if n == n.fs.root {
		return at{dir: n.fs.rootRef(), name: "."}, nil
	}
	name, parent := n.Parent()
	pn := asNode(parent)
	if pn == nil {
		return at{}, fmt.Errorf("node is unlinked: %w", syscall.ENOENT)
	}
	r, err := pn.upperDir()
	if err != nil {
		return at{}, err
	}
	return at{dir: r, name: name}, nil
}
