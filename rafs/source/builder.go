package source

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/merge"
	"github.com/gonydus/nydus/rafs/tree"
)

// ErrUnsafePath reports an entry name that escapes the root or passes
// through something that is not a directory.
var ErrUnsafePath = errors.New("source: unsafe path")

const (
	whPrefix = ".wh."
	whOpaque = ".wh..wh..opq"
)

// treeBuilder inserts entries by path into a tree, creating implicit
// parent directories.
type treeBuilder struct {
	cfg      *config
	root     *tree.Inode
	implicit map[*tree.Inode]bool
	entries  int
}

func newTreeBuilder(cfg *config) *treeBuilder {
	root := tree.NewDir(0o755)
	return &treeBuilder{cfg: cfg, root: root, implicit: map[*tree.Inode]bool{root: true}}
}

// cleanName turns a tar name into path components; "" means the root.
func cleanName(name string) ([]string, error) {
	n := strings.TrimLeft(name, "/")
	if n == "" || n == "." || n == "./" {
		return nil, nil
	}
	c := path.Clean(n)
	if c == "." {
		return nil, nil
	}
	if c == ".." || strings.HasPrefix(c, "../") {
		return nil, fmt.Errorf("%w: %q escapes the root", ErrUnsafePath, name)
	}
	parts := strings.Split(c, "/")
	for _, p := range parts {
		if len(p) > 255 {
			return nil, fmt.Errorf("source: %q has a name component of %d bytes (max 255)", name, len(p))
		}
	}
	return parts, nil
}

// parent returns the directory that holds parts' last component, creating
// implicit directories on the way.
func (b *treeBuilder) parent(name string, parts []string) (*tree.Inode, error) {
	dir := b.root
	for i, p := range parts[:len(parts)-1] {
		e := dir.Child(p)
		if e == nil {
			d := tree.NewDir(0o755)
			b.implicit[d] = true
			dir.SetChild(p, d)
			dir = d
			continue
		}
		if !e.Inode.IsDir() {
			return nil, fmt.Errorf("%w: %q goes through %q, which is not a directory", ErrUnsafePath, name, strings.Join(parts[:i+1], "/"))
		}
		dir = e.Inode
	}
	return dir, nil
}

// add places ino at name. A directory replacing a directory keeps the
// existing children (later attributes win); anything else replaces.
func (b *treeBuilder) add(name string, ino *tree.Inode) error {
	b.entries++
	if b.entries > b.cfg.maxEntries {
		return fmt.Errorf("source: more than %d entries", b.cfg.maxEntries)
	}
	parts, err := cleanName(name)
	if err != nil {
		return err
	}
	if parts == nil {
		if !ino.IsDir() {
			return fmt.Errorf("%w: root entry %q is not a directory", ErrUnsafePath, name)
		}
		b.updateDir(b.root, ino)
		return nil
	}
	dir, err := b.parent(name, parts)
	if err != nil {
		return err
	}
	last := parts[len(parts)-1]
	if b.cfg.whiteout == merge.WhiteoutOverlayfs && strings.HasPrefix(last, whPrefix) {
		// OCI markers in overlayfs form.
		if last == whOpaque {
			dir.SetXattr("trusted.overlay.opaque", []byte("y"))
			return nil
		}
		last = strings.TrimPrefix(last, whPrefix)
		if last == "" || last == "." || last == ".." {
			return fmt.Errorf("%w: whiteout %q names nothing", ErrUnsafePath, name)
		}
		ino = &tree.Inode{Mode: layout.ModeChr, Rdev: unix.Mkdev(0, 0), UID: ino.UID, GID: ino.GID, Mtime: ino.Mtime, MtimeNsec: ino.MtimeNsec}
	}
	if cur := dir.Child(last); cur != nil && cur.Inode.IsDir() && ino.IsDir() {
		b.updateDir(cur.Inode, ino)
		return nil
	}
	dir.SetChild(last, ino)
	return nil
}

func (b *treeBuilder) updateDir(dst, src *tree.Inode) {
	children := dst.Children
	*dst = *src
	dst.Children = children
	delete(b.implicit, dst)
}

// lookup finds an existing entry by tar name (for hardlinks).
func (b *treeBuilder) lookup(name string) (*tree.Inode, error) {
	parts, err := cleanName(name)
	if err != nil {
		return nil, err
	}
	ino := b.root
	for _, p := range parts {
		if !ino.IsDir() {
			return nil, fmt.Errorf("%w: link target %q goes through a non-directory", ErrUnsafePath, name)
		}
		e := ino.Child(p)
		if e == nil {
			return nil, fmt.Errorf("source: link target %q does not exist (yet)", name)
		}
		ino = e.Inode
	}
	return ino, nil
}

func (b *treeBuilder) tree() *tree.Tree {
	return &tree.Tree{Root: b.root, Prefetch: cleanPrefetch(b.cfg.prefetch)}
}
