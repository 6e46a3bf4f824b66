package layout

import "bytes"

// Dirent is one 12-byte EROFS directory entry header. Names follow the
// headers inside the same block and are not NUL-terminated.
type Dirent struct {
	Nid      uint64
	NameOff  uint16
	FileType uint8
}

// Marshal encodes the dirent into b (DirentSize bytes).
func (d *Dirent) Marshal(b []byte) {
	_ = b[DirentSize-1]
	le.PutUint64(b[0:], d.Nid)
	le.PutUint16(b[8:], d.NameOff)
	b[10] = d.FileType
	b[11] = 0
}

// Unmarshal decodes a dirent from b.
func (d *Dirent) Unmarshal(b []byte) error {
	if len(b) < DirentSize {
		return ErrShortBuffer
	}
	d.Nid = le.Uint64(b[0:])
	d.NameOff = le.Uint16(b[8:])
	d.FileType = b[10]
	return nil
}

// DirEntry is a decoded directory entry.
type DirEntry struct {
	Name     string
	Nid      uint64
	FileType uint8
}

// DecodeDirBlock decodes the entries of one directory block. used is the
// number of meaningful bytes in the block (the block size, or the
// directory's remaining size for its last block).
func DecodeDirBlock(block []byte, used int) ([]DirEntry, error) {
	if used > len(block) {
		used = len(block)
	}
	if used < DirentSize {
		return nil, errorf("directory block of %d bytes holds no entry", used)
	}
	var first Dirent
	_ = first.Unmarshal(block)
	if first.NameOff < DirentSize || first.NameOff%DirentSize != 0 || int(first.NameOff) > used {
		return nil, errorf("bad first name offset %d in directory block", first.NameOff)
	}
	n := int(first.NameOff) / DirentSize
	out := make([]DirEntry, 0, n)
	for k := range n {
		var d Dirent
		_ = d.Unmarshal(block[k*DirentSize:])
		end := used
		if k+1 < n {
			end = int(le.Uint16(block[(k+1)*DirentSize+8:]))
		}
		if int(d.NameOff) > end || end > used || int(d.NameOff) < int(first.NameOff) {
			return nil, errorf("bad name bounds [%d,%d) in directory block", d.NameOff, end)
		}
		name := block[d.NameOff:end]
		if k+1 == n {
			// The last name may be followed by NUL padding.
			for len(name) > 0 && name[len(name)-1] == 0 {
				name = name[:len(name)-1]
			}
		}
		if len(name) == 0 || len(name) > 255 {
			return nil, errorf("directory entry with name length %d", len(name))
		}
		if bytes.ContainsAny(name, "/\x00") {
			// A name is one path component; "a/b" or "x/.." would alias
			// other paths of the image when joined.
			return nil, errorf("directory entry name %q holds a slash or NUL", name)
		}
		out = append(out, DirEntry{Name: string(name), Nid: d.Nid, FileType: d.FileType})
	}
	return out, nil
}
