// Package merge combines layer trees into one filesystem tree the way
// nydus-image merge (and kernel overlayfs) does: later layers win,
// whiteouts delete names from the layers below, opaque directories hide
// the lower contents of a directory, and the whiteout markers themselves
// do not appear in the result.
package merge

import (
	"bytes"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// WhiteoutSpec says how a layer marks deletions.
type WhiteoutSpec int

// Whiteout specs, named as nydus-image's --whiteout-spec values.
const (
	// WhiteoutOCI: ".wh.NAME" files delete NAME, ".wh..wh..opq" makes the
	// directory opaque.
	WhiteoutOCI WhiteoutSpec = iota
	// WhiteoutOverlayfs: 0/0 character devices delete, xattr
	// trusted.overlay.opaque=y makes a directory opaque.
	WhiteoutOverlayfs
	// WhiteoutNone: no markers are interpreted.
	WhiteoutNone
)

// ParseWhiteoutSpec maps "oci", "overlayfs" or "none".
func ParseWhiteoutSpec(s string) (WhiteoutSpec, error) {
	switch s {
	case "oci", "":
		return WhiteoutOCI, nil
	case "overlayfs":
		return WhiteoutOverlayfs, nil
	case "none":
		return WhiteoutNone, nil
	}
	return 0, fmt.Errorf("merge: unknown whiteout spec %q (want oci, overlayfs or none)", s)
}

const (
	whPrefix  = ".wh."
	whOpaque  = ".wh..wh..opq"
	opaqueKey = "trusted.overlay.opaque"
)

// isWhiteout reports whether e deletes a lower name, and which.
func (s WhiteoutSpec) isWhiteout(e *tree.Entry) (string, bool) {
	switch s {
	case WhiteoutOCI:
		if strings.HasPrefix(e.Name, whPrefix) && e.Name != whOpaque {
			return e.Name[len(whPrefix):], true
		}
	case WhiteoutOverlayfs:
		ino := e.Inode
		if ino.Mode&layout.ModeTypeMask == layout.ModeChr && ino.Rdev == unix.Mkdev(0, 0) {
			return e.Name, true
		}
	}
	return "", false
}

// isOpaque reports whether the layer directory hides lower contents.
func (s WhiteoutSpec) isOpaque(dir *tree.Inode) bool {
	switch s {
	case WhiteoutOCI:
		return dir.Child(whOpaque) != nil
	case WhiteoutOverlayfs:
		v, ok := dir.Xattr(opaqueKey)
		return ok && bytes.Equal(v, []byte("y"))
	}
	return false
}

// Apply overlays layer onto base (both directories) in place: the layer
// directory's attributes replace base's (the root's too, as overlayfs shows
// the uppermost directory and upstream's merge keeps the upper root), and
// the children merge. Entries of layer are moved into base; layer must not
// be used afterwards.
func Apply(base, layer *tree.Inode, spec WhiteoutSpec) {
	opaque := spec.isOpaque(layer)
	*base = tree.Inode{Mode: layer.Mode, UID: layer.UID, GID: layer.GID, Mtime: layer.Mtime, MtimeNsec: layer.MtimeNsec,
		Xattrs: layer.Xattrs, Children: base.Children}
	stripOpaque(base, spec)
	if opaque {
		base.Children = nil
	}
	// Deletions first, so a layer may delete and recreate a name.
	for _, e := range layer.Children {
		if name, ok := spec.isWhiteout(e); ok {
			base.RemoveChild(name)
		}
	}
	for _, e := range layer.Children {
		if _, ok := spec.isWhiteout(e); ok || (spec == WhiteoutOCI && e.Name == whOpaque) {
			continue
		}
		cur := base.Child(e.Name)
		if cur != nil && cur.Inode.IsDir() && e.Inode.IsDir() && cur.Inode != e.Inode {
			Apply(cur.Inode, e.Inode, spec)
			continue
		}
		Strip(e.Inode, spec)
		base.SetChild(e.Name, e.Inode)
	}
}

// Strip removes whiteout markers from a subtree that has nothing below it.
func Strip(dir *tree.Inode, spec WhiteoutSpec) {
	if !dir.IsDir() {
		return
	}
	stripOpaque(dir, spec)
	kept := dir.Children[:0]
	for _, e := range dir.Children {
		if _, ok := spec.isWhiteout(e); ok || (spec == WhiteoutOCI && e.Name == whOpaque) {
			continue
		}
		Strip(e.Inode, spec)
		kept = append(kept, e)
	}
	dir.Children = kept
}

func stripOpaque(dir *tree.Inode, spec WhiteoutSpec) {
	if spec == WhiteoutOverlayfs {
		dir.RemoveXattr(opaqueKey)
	}
}
