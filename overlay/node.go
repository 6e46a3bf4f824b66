package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// node is one merged name. Its upper object is reached from its parent's
// upper directory descriptor (see held.go); what it merges from the lower
// tree is fixed when it is looked up (only directories merge, and a
// directory's lower part never changes while the node lives).
type node struct {
	gofs.Inode
	fs *FS

	mu       sync.Mutex
	lower    Lower       // nil when there is none, or the upper object hides it
	copiedUp atomic.Bool // set when this node's lower object is copied up

	tmpfd  int          // an O_TMPFILE file's descriptor (under mu), for linkat
	held   *dirRef      // its upper directory's descriptor (under fs.held.mu)
	opened []*upperFile // open upper handles (under mu), for SETATTR without one

	// cachedOpens counts open handles the kernel caches (not passthrough).
	cachedOpens atomic.Int32
	openMu      sync.Mutex // serialises Open (taken before FS.mu)
}

// path is the node's path relative to the overlay's root ("" for the
// root), which need not be the root of the mount, for messages and as a
// key; upper objects are never opened by it. A node unlinked from the
// tree has none.
func (n *node) path() (string, error) {
	var buf [16]string
	segs := buf[:0]
	size := 0
	p := &n.Inode
	root := &n.fs.root.Inode
	for p != root {
		name, parent := p.Parent()
		if parent == nil {
			return "", fmt.Errorf("node is unlinked: %w", syscall.ENOENT)
		}
		segs = append(segs, name)
		size += len(name) + 1
		p = parent
	}
	switch len(segs) {
	case 0:
		return "", nil
	case 1:
		return segs[0], nil
	}
	var b strings.Builder
	b.Grow(size)
	for i := len(segs) - 1; i >= 0; i-- {
		b.WriteString(segs[i])
		if i > 0 {
			b.WriteByte('/')
		}
	}
	return b.String(), nil
}

func (n *node) getLower() Lower {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lower
}

func (n *node) setLower(l Lower) {
	n.mu.Lock()
	n.lower = l
	n.mu.Unlock()
}

func asNode(in *gofs.Inode) *node {
	if in == nil {
		return nil
	}
	nd, _ := in.Operations().(*node)
	return nd
}

// entry is what one name resolves to in both layers.
type entry struct {
	path     string        // for messages
	dir      *node         // the directory holding the name; nil for the root
	name     string        // the name in dir ("." for the root)
	upper    *unix.Statx_t // nil: no upper object (whiteouts included)
	whiteout bool          // the upper object is a whiteout
	opaque   bool          // the upper object is an opaque directory (known with opaqueOK)
	opaqueOK bool          // opaque was read (it is only needed where the parent has a lower part)
	lower    Lower         // visible lower object: nil if none or hidden
	lowerPos bool          // the lower tree has an object under this name
	lst      Stat          // stat of lower
}

func (e *entry) exists() bool { return e.upper != nil || e.lower != nil }

func (e *entry) mode() uint32 {
	if e.upper != nil {
		return uint32(e.upper.Mode)
	}
	return e.lst.Mode
}

func (e *entry) isDir() bool { return e.exists() && e.mode()&unix.S_IFMT == unix.S_IFDIR }

// merged reports a directory with an upper and a lower part.
func (e *entry) merged() bool { return e.upper != nil && e.lower != nil }

func isWhiteout(st *unix.Statx_t) bool {
	return uint32(st.Mode)&unix.S_IFMT == unix.S_IFCHR && st.Rdev_major == 0 && st.Rdev_minor == 0
}

// at returns where e's upper object is (or would be): the descriptor of
// its upper directory and its name there. It fails with ENOENT or ENOTDIR
// while the directory is not in the upper tree.
func (e *entry) at(f *FS) (at, error) {
	if e.dir == nil {
		return at{dir: f.rootRef(), name: "."}, nil
	}
	r, err := e.dir.upperDir()
	if err != nil {
		return at{}, err
	}
	return at{dir: r, name: e.name}, nil
}

// atDo calls fn with where e's upper object is.
func (e *entry) atDo(f *FS, fn func(dirfd int, name string) error) error {
	a, err := e.at(f)
	if err != nil {
		return err
	}
	defer a.release()
	return fn(a.dir.fd, a.name)
}

// statAt stats the upper object name in the directory dirfd.
func statAt(dirfd int, name string) (*unix.Statx_t, error) {
	var st unix.Statx_t
	err := unix.Statx(dirfd, name, unix.AT_SYMLINK_NOFOLLOW,
		unix.STATX_BASIC_STATS|unix.STATX_BTIME, &st)
	switch {
	case err == unix.ENOENT || err == unix.ENOTDIR:
		return nil, err // the common miss of a lookup, not worth a message
	case err != nil:
		return nil, fmt.Errorf("stat upper %s: %w", name, err)
	}
	return &st, nil
}

// statUpper stats e's upper object; ENOENT or ENOTDIR: there is none.
func (f *FS) statUpper(e *entry) (*unix.Statx_t, error) {
	a, err := e.at(f)
	if err != nil {
		return nil, err
	}
	defer a.release()
	return statAt(a.dir.fd, a.name)
}

// resolve looks name up under the directory dir (at path dirPath, with
// lower part dirLower).
func (f *FS) resolve(ctx context.Context, dir *node, name string) (*entry, error) {
	dirPath, err := dir.path()
	if err != nil {
		return nil, err
	}
	dirLower := dir.getLower()
	e := &entry{path: join(dirPath, name), dir: dir, name: name}
	st, err := f.statUpper(e)
	switch {
	case err == nil && isWhiteout(st):
		e.whiteout = true
	case err == nil:
		e.upper = st
		// Opacity hides a lower object; without a lower part of dir
		// there is none to hide.
		if uint32(st.Mode)&unix.S_IFMT == unix.S_IFDIR && dirLower != nil {
			if e.opaque, err = f.isOpaque(e); err != nil {
				return nil, err
			}
			e.opaqueOK = true
		}
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
	default:
		return nil, err
	}
	if dirLower == nil {
		return e, nil
	}
	l, err := dirLower.Lookup(ctx, name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return e, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lower lookup %s: %w", e.path, err)
	}
	lst, err := l.Stat(ctx)
	if err != nil {
		return nil, fmt.Errorf("lower stat %s: %w", e.path, err)
	}
	if lst.Mode&unix.S_IFMT == unix.S_IFCHR && lst.Rdev == 0 {
		return e, nil // a whiteout in the lower tree hides only itself
	}
	e.lowerPos = true
	switch {
	case e.whiteout || e.opaque:
		return e, nil
	case e.upper != nil && (uint32(e.upper.Mode)&unix.S_IFMT != unix.S_IFDIR || lst.Mode&unix.S_IFMT != unix.S_IFDIR):
		return e, nil // an upper object hides a lower one unless both are directories
	}
	e.lower, e.lst = l, lst
	return e, nil
}

// selfEntry is the entry of n's own name, with nothing resolved.
func (n *node) selfEntry() (*entry, error) {
	p, err := n.path()
	if err != nil {
		return nil, err
	}
	if n == n.fs.root {
		return &entry{path: "", name: "."}, nil
	}
	name, parent := n.Parent()
	pn := asNode(parent)
	if pn == nil {
		return nil, fmt.Errorf("node is unlinked: %w", syscall.ENOENT)
	}
	return &entry{path: p, dir: pn, name: name}, nil
}

// resolveSelf resolves the node's own name.
func (n *node) resolveSelf(ctx context.Context) (*entry, error) {
	e, err := n.selfEntry()
	if err != nil {
		return nil, err
	}
	if e.dir == nil {
		if e.upper, err = n.fs.statUpper(e); err != nil {
			return nil, err
		}
		e.lower = n.getLower()
		return e, nil
	}
	st, err := n.fs.statUpper(e)
	switch {
	case err == nil && isWhiteout(st):
		return nil, fmt.Errorf("%s: %w", e.path, syscall.ENOENT)
	case err == nil:
		e.upper = st
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
	default:
		return nil, err
	}
	l := n.getLower()
	if l != nil && (e.upper == nil || uint32(e.upper.Mode)&unix.S_IFMT == unix.S_IFDIR) {
		e.lower = l
		if e.upper == nil { // the lower stat is only used without an upper object
			if e.lst, err = l.Stat(ctx); err != nil {
				return nil, err
			}
		}
	}
	if !e.exists() {
		return nil, fmt.Errorf("%s: %w", e.path, syscall.ENOENT)
	}
	return e, nil
}

// child returns the node registered for name under n, if the kernel knows it.
func (n *node) child(name string) *node { return asNode(n.GetChild(name)) }

// lowerStat is the stat of the node's lower object.
func (n *node) lowerStat() (Stat, error) {
	l := n.getLower()
	if l == nil {
		return Stat{}, fmt.Errorf("no lower object: %w", syscall.ENOENT)
	}
	return l.Stat(context.Background())
}
