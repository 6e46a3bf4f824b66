package layout

// Sizes of the entries of a blob's chunk-info (ci) array.
const (
	ChunkInfoV1Size = 16
	ChunkInfoV2Size = 24
)

// Chunk-info v2 flag bits (top byte of word 0).
const (
	CIv2Compressed = 0x01
	CIv2Zran       = 0x02
	CIv2Batch      = 0x04
	CIv2Encrypted  = 0x08
	CIv2HasCRC32   = 0x10
	ciV2KnownFlags = 0x1f
)

// BlobChunk is the decoded form of a ci-array entry (v1 or v2).
type BlobChunk struct {
	UncompressedOffset uint64
	UncompressedSize   uint32
	CompressedOffset   uint64
	CompressedSize     uint32
	Compressed         bool
	Flags              uint8  // v2 flags (CIv2*)
	Data               uint64 // v2 word 2: zran/batch locator or CRC32
}

// MarshalV1 encodes the chunk as a 16-byte v1 entry.
func (c *BlobChunk) MarshalV1(b []byte) error {
	_ = b[ChunkInfoV1Size-1]
	if c.UncompressedSize == 0 || c.UncompressedSize > 1<<24 || c.CompressedSize == 0 || c.CompressedSize > 1<<24 {
		return errorf("chunk sizes %d/%d out of range for a v1 chunk info", c.CompressedSize, c.UncompressedSize)
	}
	if c.UncompressedOffset%BlockSize != 0 || c.UncompressedOffset >= 1<<44 || c.CompressedOffset >= 1<<40 {
		return errorf("chunk offsets %d/%d out of range for a v1 chunk info", c.CompressedOffset, c.UncompressedOffset)
	}
	us := uint64(c.UncompressedSize - 1)
	cs := uint64(c.CompressedSize - 1)
	w0 := c.UncompressedOffset&0xfff_ffff_f000 | (us>>20&0xf)<<8 | (us&0xfffff)<<44
	w1 := c.CompressedOffset&0xff_ffff_ffff | (cs>>20&0xf)<<40 | (cs&0xfffff)<<44
	le.PutUint64(b[0:], w0)
	le.PutUint64(b[8:], w1)
	return nil
}

// UnmarshalV1 decodes a 16-byte v1 entry.
func (c *BlobChunk) UnmarshalV1(b []byte) error {
	if len(b) < ChunkInfoV1Size {
		return ErrShortBuffer
	}
	w0 := le.Uint64(b[0:])
	w1 := le.Uint64(b[8:])
	*c = BlobChunk{}
	c.UncompressedOffset = w0 & 0xfff_ffff_f000
	c.UncompressedSize = uint32((w0>>8&0xf)<<20|(w0>>44)) + 1
	c.CompressedOffset = w1 & 0xff_ffff_ffff
	c.CompressedSize = uint32((w1>>40&0xf)<<20|(w1>>44)) + 1
	c.Compressed = c.CompressedSize != c.UncompressedSize
	if c.Compressed {
		c.Flags = CIv2Compressed
	}
	return nil
}

// MarshalV2 encodes the chunk as a 24-byte v2 entry.
func (c *BlobChunk) MarshalV2(b []byte) error {
	_ = b[ChunkInfoV2Size-1]
	if c.UncompressedSize == 0 || c.UncompressedSize > 1<<24 || c.CompressedSize >= 1<<24 {
		return errorf("chunk sizes %d/%d out of range for a v2 chunk info", c.CompressedSize, c.UncompressedSize)
	}
	if c.UncompressedOffset%BlockSize != 0 || c.UncompressedOffset>>12 > 0xffff_ffff || c.CompressedOffset >= 1<<40 {
		return errorf("chunk offsets %d/%d out of range for a v2 chunk info", c.CompressedOffset, c.UncompressedOffset)
	}
	flags := c.Flags
	if c.Compressed {
		flags |= CIv2Compressed
	}
	w0 := c.UncompressedOffset>>12 | uint64(c.UncompressedSize-1)<<32 | uint64(flags)<<56
	w1 := c.CompressedOffset | uint64(c.CompressedSize)<<40
	le.PutUint64(b[0:], w0)
	le.PutUint64(b[8:], w1)
	le.PutUint64(b[16:], c.Data)
	return nil
}

// UnmarshalV2 decodes a 24-byte v2 entry.
func (c *BlobChunk) UnmarshalV2(b []byte) error {
	if len(b) < ChunkInfoV2Size {
		return ErrShortBuffer
	}
	w0 := le.Uint64(b[0:])
	w1 := le.Uint64(b[8:])
	*c = BlobChunk{}
	c.UncompressedOffset = (w0 & 0xffff_ffff) << 12
	c.UncompressedSize = uint32(w0>>32&0xff_ffff) + 1
	c.Flags = uint8(w0 >> 56)
	if c.Flags&^ciV2KnownFlags != 0 {
		return errorf("unknown chunk-info v2 flags %#x", c.Flags)
	}
	c.Compressed = c.Flags&CIv2Compressed != 0
	c.CompressedOffset = w1 & 0xff_ffff_ffff
	c.CompressedSize = uint32(w1 >> 40)
	c.Data = le.Uint64(b[16:])
	return nil
}

// CCTHeaderSize is the size of the blob compression-context header.
const CCTHeaderSize = 4096

// CCTHeader is the 4096-byte header that follows the ci array in a blob
// ("blob.meta.header").
type CCTHeader struct {
	Features           BlobFeatures
	CICompressor       Compressor
	CIEntries          uint32
	CIOffset           uint64
	CICompressedSize   uint64
	CIUncompressedSize uint64
	ExtOffset          uint64 // zran/batch table offset in the uncompressed ci data
	ExtSize            uint64
	ExtCount           uint32
}

// Marshal encodes the header into b (CCTHeaderSize bytes).
func (h *CCTHeader) Marshal(b []byte) {
	_ = b[CCTHeaderSize-1]
	clear(b[:CCTHeaderSize])
	le.PutUint32(b[0:], CCTMagic)
	le.PutUint32(b[4:], uint32(h.Features))
	le.PutUint32(b[8:], uint32(h.CICompressor))
	le.PutUint32(b[12:], h.CIEntries)
	le.PutUint64(b[16:], h.CIOffset)
	le.PutUint64(b[24:], h.CICompressedSize)
	le.PutUint64(b[32:], h.CIUncompressedSize)
	le.PutUint64(b[40:], h.ExtOffset)
	le.PutUint64(b[48:], h.ExtSize)
	le.PutUint32(b[56:], h.ExtCount)
	le.PutUint32(b[4092:], CCTMagic)
}

// Unmarshal decodes and checks the magics of a header.
func (h *CCTHeader) Unmarshal(b []byte) error {
	if len(b) < CCTHeaderSize {
		return ErrShortBuffer
	}
	if le.Uint32(b[0:]) != CCTMagic || le.Uint32(b[4092:]) != CCTMagic {
		return errorf("bad blob.meta header magic %#x/%#x", le.Uint32(b[0:]), le.Uint32(b[4092:]))
	}
	h.Features = BlobFeatures(le.Uint32(b[4:]))
	h.CICompressor = Compressor(le.Uint32(b[8:]))
	if h.CICompressor > CompressZstd {
		h.CICompressor = CompressNone
	}
	h.CIEntries = le.Uint32(b[12:])
	h.CIOffset = le.Uint64(b[16:])
	h.CICompressedSize = le.Uint64(b[24:])
	h.CIUncompressedSize = le.Uint64(b[32:])
	h.ExtOffset = le.Uint64(b[40:])
	h.ExtSize = le.Uint64(b[48:])
	h.ExtCount = le.Uint32(b[56:])
	return nil
}

// MatchesBlob checks the header against its blob-table entry.
func (h *CCTHeader) MatchesBlob(e *BlobEntry) error {
	switch {
	case h.CIEntries != e.ChunkCount:
		return errorf("blob.meta header has %d entries, blob table %d", h.CIEntries, e.ChunkCount)
	case h.CICompressor != e.CICompressor:
		return errorf("blob.meta header compressor %v, blob table %v", h.CICompressor, e.CICompressor)
	case h.CIOffset != e.CIOffset:
		return errorf("blob.meta header ci offset %d, blob table %d", h.CIOffset, e.CIOffset)
	case h.CICompressedSize != e.CICompressedSize || h.CIUncompressedSize != e.CIUncompressedSize:
		return errorf("blob.meta header ci sizes %d/%d, blob table %d/%d",
			h.CICompressedSize, h.CIUncompressedSize, e.CICompressedSize, e.CIUncompressedSize)
	}
	return nil
}
