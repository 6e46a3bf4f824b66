package rafs

import (
	"fmt"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs/layout"
)

// Inode is a decoded inode. It is a value: callers may keep and modify it.
type Inode struct {
	Nid       uint64
	Ino       uint32
	Mode      uint32 // file type and permission bits, as in stat(2)
	UID, GID  uint32
	Nlink     uint32
	Size      uint64
	Mtime     uint64
	MtimeNsec uint32
	Rdev      uint64 // device number (unix.Mkdev) of char and block devices

	raw layout.Inode
	off uint64 // byte offset of the inode in the bootstrap
}

// IsDir reports whether the inode is a directory.
func (i *Inode) IsDir() bool { return i.Mode&layout.ModeTypeMask == layout.ModeDir }

// IsReg reports whether the inode is a regular file.
func (i *Inode) IsReg() bool { return i.Mode&layout.ModeTypeMask == layout.ModeReg }

// IsSymlink reports whether the inode is a symbolic link.
func (i *Inode) IsSymlink() bool { return i.Mode&layout.ModeTypeMask == layout.ModeSymlink }

// ModTime returns the modification time.
func (i *Inode) ModTime() time.Time { return time.Unix(int64(i.Mtime), int64(i.MtimeNsec)) }

// FileMode converts Mode to an io/fs mode.
func (i *Inode) FileMode() fs.FileMode {
	m := fs.FileMode(i.Mode & 0o777)
	switch i.Mode & layout.ModeTypeMask {
	case layout.ModeDir:
		m |= fs.ModeDir
	case layout.ModeSymlink:
		m |= fs.ModeSymlink
	case layout.ModeChr:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case layout.ModeBlk:
		m |= fs.ModeDevice
	case layout.ModeFifo:
		m |= fs.ModeNamedPipe
	case layout.ModeSock:
		m |= fs.ModeSocket
	}
	if i.Mode&unix.S_ISUID != 0 {
		m |= fs.ModeSetuid
	}
	if i.Mode&unix.S_ISGID != 0 {
		m |= fs.ModeSetgid
	}
	if i.Mode&unix.S_ISVTX != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// inodeOffset returns the byte offset of nid, checking that at least a
// compact inode fits there.
func (m *Image) inodeOffset(nid uint64) (uint64, error) {
	limit := (uint64(m.size) - m.metaBase) / layout.InodeSlotSize
	if nid >= limit {
		return 0, formatErr("nid %d lies outside the bootstrap", nid)
	}
	return m.metaBase + nid*layout.InodeSlotSize, nil
}

// Inode decodes the inode nid.
func (m *Image) Inode(nid uint64) (*Inode, error) {
	ino := new(Inode)
	if err := m.ReadInode(nid, ino); err != nil {
		return nil, err
	}
	return ino, nil
}

// ReadInode decodes the inode nid into ino, allocating nothing: for
// callers that decode one inode per request (a FUSE server's lookups).
func (m *Image) ReadInode(nid uint64, ino *Inode) error {
	off, err := m.inodeOffset(nid)
	if err != nil {
		return err
	}
	n := uint64(layout.ExtendedInodeSize)
	if rest := uint64(m.size) - off; rest < n {
		n = rest
	}
	b, err := m.read(off, n, "inode")
	if err != nil {
		return err
	}
	*ino = Inode{Nid: nid, off: off}
	if err := ino.raw.Unmarshal(b); err != nil {
		return fmt.Errorf("rafs: inode %d: %w", nid, err)
	}
	r := &ino.raw
	ino.Ino, ino.Mode, ino.UID, ino.GID = r.Ino, uint32(r.Mode), r.UID, r.GID
	ino.Nlink, ino.Size, ino.Mtime, ino.MtimeNsec = r.Nlink, r.Size, r.Mtime, r.MtimeNsec
	if !r.Extended() {
		// Compact inodes carry no time of their own: EROFS uses the build time.
		ino.Mtime, ino.MtimeNsec = m.sb.BuildTime, m.sb.BuildTimeNsec
	}
	switch ino.Mode & layout.ModeTypeMask {
	case layout.ModeChr, layout.ModeBlk:
		major, minor := layout.DecodeRdev(r.U)
		ino.Rdev = unix.Mkdev(major, minor)
	case layout.ModeReg, layout.ModeDir, layout.ModeSymlink, layout.ModeFifo, layout.ModeSock:
	default:
		return formatErr("inode %d has unknown file type in mode %#o", nid, ino.Mode)
	}
	dl := r.DataLayout()
	switch {
	case dl == layout.LayoutChunkBased && !ino.IsReg():
		return formatErr("inode %d (mode %#o) is chunk-based but not a regular file", nid, ino.Mode)
	case ino.IsReg() && dl != layout.LayoutChunkBased && ino.Size > 0:
		return formatErr("regular file inode %d uses data layout %d; only chunk-based files are supported", nid, dl)
	case ino.IsDir() && ino.Size == 0:
		return formatErr("directory inode %d is empty (no . and ..)", nid)
	}
	if end := off + uint64(r.CoreSize()) + uint64(r.XattrSize()); end > uint64(m.size) {
		return formatErr("inode %d with its xattrs ends past the bootstrap", nid)
	}
	return nil
}

// Xattrs returns the extended attributes of nid.
func (m *Image) Xattrs(nid uint64) ([]layout.Xattr, error) {
	ino, err := m.Inode(nid)
	if err != nil {
		return nil, err
	}
	return m.inodeXattrs(ino)
}

func (m *Image) inodeXattrs(ino *Inode) ([]layout.Xattr, error) {
	n := ino.raw.XattrSize()
	if n == 0 {
		return nil, nil
	}
	b, err := m.read(ino.off+uint64(ino.raw.CoreSize()), uint64(n), "xattrs")
	if err != nil {
		return nil, err
	}
	xs, err := layout.DecodeXattrs(b)
	if err != nil {
		return nil, fmt.Errorf("rafs: inode %d xattrs: %w", ino.Nid, err)
	}
	return xs, nil
}

// GetXattr returns the value of one extended attribute; ok is false when
// the inode has no such attribute.
func (m *Image) GetXattr(nid uint64, name string) (value []byte, ok bool, err error) {
	xs, err := m.Xattrs(nid)
	if err != nil {
		return nil, false, err
	}
	for _, x := range xs {
		if x.Name == name {
			return x.Value, true, nil
		}
	}
	return nil, false, nil
}

// flatData returns bytes [off, off+n) of a flat (plain or inline) inode.
func (m *Image) flatData(ino *Inode, off, n uint64) ([]byte, error) {
	size := ino.Size
	if off > size || n > size-off {
		return nil, formatErr("read [%d,+%d) past the %d-byte inode %d", off, n, size, ino.Nid)
	}
	if n == 0 {
		return nil, nil
	}
	dl := ino.raw.DataLayout()
	if dl != layout.LayoutFlatPlain && dl != layout.LayoutFlatInline {
		return nil, formatErr("inode %d has data layout %d, want a flat layout", ino.Nid, dl)
	}
	nblocks := (size + m.bs - 1) / m.bs
	plainBlocks := nblocks
	if dl == layout.LayoutFlatInline {
		plainBlocks--
	}
	out := make([]byte, 0, n)
	for n > 0 {
		blk := off / m.bs
		in := off % m.bs
		k := min(n, m.bs-in)
		var b []byte
		var err error
		if blk < plainBlocks {
			addr := uint64(ino.raw.U)
			if addr == 0 || addr+blk >= uint64(m.size)/m.bs {
				return nil, formatErr("inode %d data block %d (blkaddr %d) lies outside the bootstrap", ino.Nid, blk, addr)
			}
			b, err = m.read((addr+blk)*m.bs+in, k, "inode data")
		} else {
			tail := ino.off + uint64(ino.raw.CoreSize()) + uint64(ino.raw.XattrSize())
			tailLen := size - plainBlocks*m.bs
			if tail%m.bs+tailLen > m.bs {
				return nil, formatErr("inline data of inode %d crosses a block boundary", ino.Nid)
			}
			b, err = m.read(tail+in, k, "inline data")
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		off += k
		n -= k
	}
	return out, nil
}

// Readlink returns the target of the symlink nid.
func (m *Image) Readlink(nid uint64) (string, error) {
	ino, err := m.Inode(nid)
	if err != nil {
		return "", err
	}
	if !ino.IsSymlink() {
		return "", fmt.Errorf("rafs: readlink inode %d: not a symlink", nid)
	}
	if ino.Size == 0 || ino.Size > unix.PathMax {
		return "", formatErr("symlink inode %d has target length %d", nid, ino.Size)
	}
	b, err := m.flatData(ino, 0, ino.Size)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
