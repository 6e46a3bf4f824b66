package rafs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/gonydus/nydus/rafs/layout"
)

// DirEntry is one name in a directory.
type DirEntry = layout.DirEntry

// maxDirSize bounds a directory: EROFS names are at most 255 bytes and a
// 4 KiB block holds at least 15 entries, so this allows ~60M entries.
const maxDirSize = 1 << 32

func (m *Image) dirInode(nid uint64) (*Inode, error) {
	ino, err := m.Inode(nid)
	if err != nil {
		return nil, err
	}
	if !ino.IsDir() {
		return nil, fmt.Errorf("%w: inode %d (mode %#o)", ErrNotDir, nid, ino.Mode)
	}
	if ino.Size > maxDirSize || ino.Size > uint64(m.size) {
		return nil, formatErr("directory inode %d of %d bytes is larger than the bootstrap", nid, ino.Size)
	}
	return ino, nil
}

func (m *Image) dirBlocks(ino *Inode) uint64 { return (ino.Size + m.bs - 1) / m.bs }

// dirBlock decodes block i of a directory.
func (m *Image) dirBlock(ino *Inode, i uint64) ([]DirEntry, error) {
	start := i * m.bs
	n := min(m.bs, ino.Size-start)
	b, err := m.flatData(ino, start, n)
	if err != nil {
		return nil, err
	}
	ents, err := layout.DecodeDirBlock(b, int(n))
	if err != nil {
		return nil, fmt.Errorf("rafs: directory inode %d block %d: %w", ino.Nid, i, err)
	}
	return ents, nil
}

// dirBlockBytes returns block i of a directory and how many bytes of it
// are used.
func (m *Image) dirBlockBytes(ino *Inode, i uint64) ([]byte, int, error) {
	start := i * m.bs
	n := min(m.bs, ino.Size-start)
	b, err := m.flatData(ino, start, n)
	return b, int(n), err
}

// blockEntries returns how many dirents a directory block holds.
func blockEntries(blk []byte, used int) (int, error) {
	if used < layout.DirentSize || len(blk) < used {
		return 0, formatErr("directory block of %d bytes holds no entry", used)
	}
	off := int(binary.LittleEndian.Uint16(blk[8:]))
	if off < layout.DirentSize || off%layout.DirentSize != 0 || off > used {
		return 0, formatErr("bad first name offset %d in directory block", off)
	}
	return off / layout.DirentSize, nil
}

// blockName returns the name of dirent k of a block without copying it,
// with the same checks as layout.DecodeDirBlock.
func blockName(blk []byte, used, k int) ([]byte, error) {
	n, err := blockEntries(blk, used)
	if err != nil {
		return nil, err
	}
	if k >= n {
		return nil, formatErr("dirent %d of %d", k, n)
	}
	first := int(binary.LittleEndian.Uint16(blk[8:]))
	start := int(binary.LittleEndian.Uint16(blk[k*layout.DirentSize+8:]))
	end := used
	if k+1 < n {
		end = int(binary.LittleEndian.Uint16(blk[(k+1)*layout.DirentSize+8:]))
	}
	if start > end || end > used || start < first {
		return nil, formatErr("bad name bounds [%d,%d) in directory block", start, end)
	}
	name := blk[start:end]
	if k+1 == n {
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
	}
	if len(name) == 0 || len(name) > 255 {
		return nil, formatErr("directory entry with name length %d", len(name))
	}
	if bytes.ContainsAny(name, "/\x00") {
		return nil, formatErr("directory entry name %q holds a slash or NUL", name)
	}
	return name, nil
}

// ReadDirFunc calls fn for each entry of directory nid, in name order,
// "." and ".." excluded, starting at entry index start (0 for all). fn
// gets the entry's index, usable as a resume offset; returning false stops.
func (m *Image) ReadDirFunc(nid uint64, start int, fn func(index int, e DirEntry) bool) error {
	ino, err := m.dirInode(nid)
	if err != nil {
		return err
	}
	idx := 0
	for blk := range m.dirBlocks(ino) {
		ents, err := m.dirBlock(ino, blk)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.Name == "." || e.Name == ".." {
				continue
			}
			if idx >= start && !fn(idx, e) {
				return nil
			}
			idx++
		}
	}
	return nil
}

// ReadDir returns all entries of directory nid but "." and "..".
func (m *Image) ReadDir(nid uint64) ([]DirEntry, error) {
	var out []DirEntry
	err := m.ReadDirFunc(nid, 0, func(_ int, e DirEntry) bool {
		out = append(out, e)
		return true
	})
	return out, err
}

// Lookup finds name in directory parent and returns its nid. Names are
// sorted across a directory's blocks, so it binary-searches the blocks by
// their first name, then the block.
func (m *Image) Lookup(parent uint64, name string) (uint64, error) {
	ino, err := m.dirInode(parent)
	if err != nil {
		return 0, err
	}
	if name == "" || len(name) > 255 || strings.ContainsAny(name, "/\x00") {
		return 0, fmt.Errorf("%w: invalid name %q", ErrNotExist, name)
	}
	lo, hi := uint64(0), m.dirBlocks(ino)
	// Find the last block whose first name is <= name.
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		blk, used, err := m.dirBlockBytes(ino, mid)
		if err != nil {
			return 0, err
		}
		first, err := blockName(blk, used, 0)
		if err != nil {
			return 0, fmt.Errorf("rafs: directory inode %d block %d: %w", ino.Nid, mid, err)
		}
		if string(first) <= name {
			lo = mid
		} else {
			hi = mid
		}
	}
	blk, used, err := m.dirBlockBytes(ino, lo)
	if err != nil {
		return 0, err
	}
	n, err := blockEntries(blk, used)
	if err != nil {
		return 0, fmt.Errorf("rafs: directory inode %d block %d: %w", ino.Nid, lo, err)
	}
	a, z := 0, n
	for a < z {
		mid := a + (z-a)/2
		nm, err := blockName(blk, used, mid)
		if err != nil {
			return 0, fmt.Errorf("rafs: directory inode %d block %d: %w", ino.Nid, lo, err)
		}
		switch c := strings.Compare(string(nm), name); {
		case c == 0:
			return binary.LittleEndian.Uint64(blk[mid*layout.DirentSize:]), nil
		case c < 0:
			a = mid + 1
		default:
			z = mid
		}
	}
	return 0, fmt.Errorf("%w: %q in directory inode %d", ErrNotExist, name, parent)
}
