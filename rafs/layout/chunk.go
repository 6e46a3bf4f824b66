package layout

// ChunkIndex is one 8-byte chunk index of a chunk-based regular file.
type ChunkIndex struct {
	BlobIndex  uint8  // 0-based data blob index (stored +1 as EROFS device id)
	ChunkIndex uint32 // 24-bit index into the blob's chunk-info array
	BlkAddr    uint32 // uncompressed offset in the blob / block size
}

// Marshal encodes the index into b (ChunkIndexSize bytes).
func (c *ChunkIndex) Marshal(b []byte) {
	_ = b[ChunkIndexSize-1]
	le.PutUint16(b[0:], uint16(c.ChunkIndex))
	hi := uint16(c.BlobIndex+1) | uint16(c.ChunkIndex>>16&0xff)<<8
	le.PutUint16(b[2:], hi)
	le.PutUint32(b[4:], c.BlkAddr)
}

// Unmarshal decodes an index from b.
func (c *ChunkIndex) Unmarshal(b []byte) error {
	if len(b) < ChunkIndexSize {
		return ErrShortBuffer
	}
	lo := le.Uint16(b[0:])
	hi := le.Uint16(b[2:])
	dev := hi & 0xff
	if dev == 0 {
		return errorf("chunk index names device 0 (the bootstrap)")
	}
	c.BlobIndex = uint8(dev - 1)
	c.ChunkIndex = uint32(hi>>8)<<16 | uint32(lo)
	c.BlkAddr = le.Uint32(b[4:])
	return nil
}

// Key returns the raw 8-byte value, which nydusd uses to match a chunk
// index against the chunk table.
func (c *ChunkIndex) Key() uint64 {
	var b [8]byte
	c.Marshal(b[:])
	return le.Uint64(b[:])
}

// ChunkInfo is one 80-byte entry of the bootstrap chunk table.
type ChunkInfo struct {
	Digest             [32]byte
	BlobIndex          uint32
	Flags              ChunkFlags
	CompressedSize     uint32
	UncompressedSize   uint32
	CompressedOffset   uint64
	UncompressedOffset uint64
	FileOffset         uint64
	Index              uint32
	CRC32              uint32
}

// Marshal encodes the entry into b (ChunkInfoSize bytes).
func (c *ChunkInfo) Marshal(b []byte) {
	_ = b[ChunkInfoSize-1]
	copy(b[0:32], c.Digest[:])
	le.PutUint32(b[32:], c.BlobIndex)
	le.PutUint32(b[36:], uint32(c.Flags))
	le.PutUint32(b[40:], c.CompressedSize)
	le.PutUint32(b[44:], c.UncompressedSize)
	le.PutUint64(b[48:], c.CompressedOffset)
	le.PutUint64(b[56:], c.UncompressedOffset)
	le.PutUint64(b[64:], c.FileOffset)
	le.PutUint32(b[72:], c.Index)
	le.PutUint32(b[76:], c.CRC32)
}

// Unmarshal decodes an entry from b.
func (c *ChunkInfo) Unmarshal(b []byte) error {
	if len(b) < ChunkInfoSize {
		return ErrShortBuffer
	}
	copy(c.Digest[:], b[0:32])
	c.BlobIndex = le.Uint32(b[32:])
	c.Flags = ChunkFlags(le.Uint32(b[36:]))
	c.CompressedSize = le.Uint32(b[40:])
	c.UncompressedSize = le.Uint32(b[44:])
	c.CompressedOffset = le.Uint64(b[48:])
	c.UncompressedOffset = le.Uint64(b[56:])
	c.FileOffset = le.Uint64(b[64:])
	c.Index = le.Uint32(b[72:])
	c.CRC32 = le.Uint32(b[76:])
	return nil
}

// IndexKey returns the chunk index that points at this entry, given the
// block size bits of the image.
func (c *ChunkInfo) IndexKey(blockBits uint) ChunkIndex {
	return ChunkIndex{BlobIndex: uint8(c.BlobIndex), ChunkIndex: c.Index, BlkAddr: uint32(c.UncompressedOffset >> blockBits)}
}
