package layout

// Inode is the decoded form of a compact (32-byte) or extended (64-byte)
// EROFS inode. Fields a compact inode cannot hold are zero after decoding one.
type Inode struct {
	Format      uint16 // bit 0: extended; bits 1..3: data layout
	XattrICount uint16
	Mode        uint16
	Nlink       uint32
	Size        uint64
	U           uint32 // raw block address, chunk format word, or rdev
	Ino         uint32
	UID         uint32
	GID         uint32
	Mtime       uint64
	MtimeNsec   uint32
}

// Extended reports whether the inode uses the 64-byte form.
func (i *Inode) Extended() bool { return i.Format&1 == InodeFormatExtended }

// DataLayout returns the data layout (LayoutFlatPlain, LayoutFlatInline or LayoutChunkBased).
func (i *Inode) DataLayout() uint16 { return (i.Format >> 1) & 0x7 }

// SetFormat sets the extended bit and the data layout.
func (i *Inode) SetFormat(extended bool, layout uint16) {
	i.Format = layout << 1
	if extended {
		i.Format |= InodeFormatExtended
	}
}

// CoreSize is the size on disk of the inode core.
func (i *Inode) CoreSize() int {
	if i.Extended() {
		return ExtendedInodeSize
	}
	return CompactInodeSize
}

// XattrSize returns the size of the inline xattr area that follows the core.
func (i *Inode) XattrSize() int {
	if i.XattrICount == 0 {
		return 0
	}
	return XattrIbodyHeaderSize + 4*(int(i.XattrICount)-1)
}

// Marshal encodes the inode core into b (CoreSize bytes).
func (i *Inode) Marshal(b []byte) {
	if i.Extended() {
		_ = b[ExtendedInodeSize-1]
		clear(b[:ExtendedInodeSize])
		le.PutUint16(b[0:], i.Format)
		le.PutUint16(b[2:], i.XattrICount)
		le.PutUint16(b[4:], i.Mode)
		le.PutUint64(b[8:], i.Size)
		le.PutUint32(b[16:], i.U)
		le.PutUint32(b[20:], i.Ino)
		le.PutUint32(b[24:], i.UID)
		le.PutUint32(b[28:], i.GID)
		le.PutUint64(b[32:], i.Mtime)
		le.PutUint32(b[40:], i.MtimeNsec)
		le.PutUint32(b[44:], i.Nlink)
		return
	}
	_ = b[CompactInodeSize-1]
	clear(b[:CompactInodeSize])
	le.PutUint16(b[0:], i.Format)
	le.PutUint16(b[2:], i.XattrICount)
	le.PutUint16(b[4:], i.Mode)
	le.PutUint16(b[6:], uint16(i.Nlink))
	le.PutUint32(b[8:], uint32(i.Size))
	le.PutUint32(b[16:], i.U)
	le.PutUint32(b[20:], i.Ino)
	le.PutUint16(b[24:], uint16(i.UID))
	le.PutUint16(b[26:], uint16(i.GID))
}

// Unmarshal decodes an inode core from b. b must hold at least the
// compact size, and the extended size when the format bit says so.
func (i *Inode) Unmarshal(b []byte) error {
	if len(b) < CompactInodeSize {
		return ErrShortBuffer
	}
	*i = Inode{}
	i.Format = le.Uint16(b[0:])
	if i.Format&^0xf != 0 {
		return errorf("unsupported inode format %#x", i.Format)
	}
	i.XattrICount = le.Uint16(b[2:])
	i.Mode = le.Uint16(b[4:])
	if i.Extended() {
		if len(b) < ExtendedInodeSize {
			return ErrShortBuffer
		}
		i.Size = le.Uint64(b[8:])
		i.U = le.Uint32(b[16:])
		i.Ino = le.Uint32(b[20:])
		i.UID = le.Uint32(b[24:])
		i.GID = le.Uint32(b[28:])
		i.Mtime = le.Uint64(b[32:])
		i.MtimeNsec = le.Uint32(b[40:])
		i.Nlink = le.Uint32(b[44:])
	} else {
		i.Nlink = uint32(le.Uint16(b[6:]))
		i.Size = uint64(le.Uint32(b[8:]))
		i.U = le.Uint32(b[16:])
		i.Ino = le.Uint32(b[20:])
		i.UID = uint32(le.Uint16(b[24:]))
		i.GID = uint32(le.Uint16(b[26:]))
	}
	switch l := i.DataLayout(); l {
	case LayoutFlatPlain, LayoutFlatInline, LayoutChunkBased:
	default:
		return errorf("unsupported inode data layout %d", l)
	}
	return nil
}

// ChunkFormat builds the chunk format word for a chunk-based inode whose
// chunks are 1<<chunkBits bytes, with blockBits the filesystem block size.
func ChunkFormat(chunkBits, blockBits uint) uint32 {
	return ChunkFormatIndexes | uint32(chunkBits-blockBits)&ChunkFormatBlkbitsMask
}

// EncodeRdev packs a device number as EROFS stores it in i_u
// (new_encode_dev: minor low byte, major, minor high bits).
func EncodeRdev(major, minor uint32) uint32 {
	return (minor & 0xff) | (major&0xfff)<<8 | (minor&^0xff)<<12
}

// DecodeRdev unpacks an i_u device number.
func DecodeRdev(u uint32) (major, minor uint32) {
	major = (u & 0xfff00) >> 8
	minor = (u & 0xff) | (u>>12)&0xfff00
	return major, minor
}
