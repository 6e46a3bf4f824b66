package convert

import (
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// keepLowerDirAttrs gives directories of layer that no tar entry described
// (parents the tar parser had to create) the attributes of the directory
// they land on in base, as docker and containerd leave an existing
// directory untouched when a layer only adds below it. merge.Apply would
// otherwise let the upper, made-up attributes win.
//
// The tree does not record which directories were made up, so they are
// recognised by the attributes rafs/source gives them: mode 0755, owner
// 0:0, mtime 0, no xattrs. An explicit entry with exactly those
// attributes over a different lower directory is rare, and it is what a
// reproducible build writes for directories it did not change either.
//
// A directory the layer makes opaque, or whose name it whites out, starts
// afresh: its lower contents are gone, so nothing below it inherits. The
// root inherits too (a layer without a "./" entry leaves it as it was):
// merge.Apply gives a directory, the root included, the upper attributes.
func keepLowerDirAttrs(base, layer *tree.Inode) {
	if madeUpDir(layer) && base.IsDir() {
		layer.Mode, layer.UID, layer.GID, layer.Mtime, layer.MtimeNsec = base.Mode, base.UID, base.GID, base.Mtime, base.MtimeNsec
		layer.Xattrs = append([]layout.Xattr(nil), base.Xattrs...)
	}
	if layer.Child(whiteoutOpaque) != nil {
		return
	}
	for _, e := range layer.Children {
		if !e.Inode.IsDir() || layer.Child(whiteoutPrefix+e.Name) != nil {
			continue
		}
		lower := base.Child(e.Name)
		if lower == nil || !lower.Inode.IsDir() {
			continue
		}
		if madeUpDir(e.Inode) {
			u, l := e.Inode, lower.Inode
			u.Mode, u.UID, u.GID, u.Mtime, u.MtimeNsec = l.Mode, l.UID, l.GID, l.Mtime, l.MtimeNsec
			u.Xattrs = append([]layout.Xattr(nil), l.Xattrs...)
		}
		keepLowerDirAttrs(lower.Inode, e.Inode)
	}
}

// OCI whiteout names.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

func madeUpDir(d *tree.Inode) bool {
	return d.Mode == layout.ModeDir|0o755 && d.UID == 0 && d.GID == 0 && d.Mtime == 0 && d.MtimeNsec == 0 && len(d.Xattrs) == 0
}
