package layout

// BlobEntry is one 256-byte entry of the RAFS v6 (extended) blob table.
type BlobEntry struct {
	BlobID             [64]byte
	BlobIndex          uint32
	ChunkSize          uint32
	ChunkCount         uint32
	Compressor         Compressor
	Digester           Digester
	Features           BlobFeatures
	CompressedSize     uint64
	UncompressedSize   uint64
	TOCSize            uint32
	CICompressor       Compressor
	CIOffset           uint64
	CICompressedSize   uint64
	CIUncompressedSize uint64
	TOCDigest          [32]byte
	MetaDigest         [32]byte
	MetaSize           uint64
	CipherIV           uint64
	CipherAlgo         uint32
}

// Marshal encodes the entry into b (BlobEntrySize bytes).
func (e *BlobEntry) Marshal(b []byte) {
	_ = b[BlobEntrySize-1]
	clear(b[:BlobEntrySize])
	copy(b[0:64], e.BlobID[:])
	le.PutUint32(b[64:], e.BlobIndex)
	le.PutUint32(b[68:], e.ChunkSize)
	le.PutUint32(b[72:], e.ChunkCount)
	le.PutUint32(b[76:], uint32(e.Compressor))
	le.PutUint32(b[80:], uint32(e.Digester))
	le.PutUint32(b[84:], uint32(e.Features))
	le.PutUint64(b[88:], e.CompressedSize)
	le.PutUint64(b[96:], e.UncompressedSize)
	le.PutUint32(b[104:], e.TOCSize)
	le.PutUint32(b[108:], uint32(e.CICompressor))
	le.PutUint64(b[112:], e.CIOffset)
	le.PutUint64(b[120:], e.CICompressedSize)
	le.PutUint64(b[128:], e.CIUncompressedSize)
	copy(b[136:168], e.TOCDigest[:])
	copy(b[168:200], e.MetaDigest[:])
	le.PutUint64(b[200:], e.MetaSize)
	le.PutUint64(b[208:], e.CipherIV)
	le.PutUint32(b[216:], e.CipherAlgo)
}

// Unmarshal decodes the entry from b.
func (e *BlobEntry) Unmarshal(b []byte) error {
	if len(b) < BlobEntrySize {
		return ErrShortBuffer
	}
	copy(e.BlobID[:], b[0:64])
	e.BlobIndex = le.Uint32(b[64:])
	e.ChunkSize = le.Uint32(b[68:])
	e.ChunkCount = le.Uint32(b[72:])
	e.Compressor = Compressor(le.Uint32(b[76:]))
	e.Digester = Digester(le.Uint32(b[80:]))
	e.Features = BlobFeatures(le.Uint32(b[84:]))
	e.CompressedSize = le.Uint64(b[88:])
	e.UncompressedSize = le.Uint64(b[96:])
	e.TOCSize = le.Uint32(b[104:])
	e.CICompressor = Compressor(le.Uint32(b[108:]))
	e.CIOffset = le.Uint64(b[112:])
	e.CICompressedSize = le.Uint64(b[120:])
	e.CIUncompressedSize = le.Uint64(b[128:])
	copy(e.TOCDigest[:], b[136:168])
	copy(e.MetaDigest[:], b[168:200])
	e.MetaSize = le.Uint64(b[200:])
	e.CipherIV = le.Uint64(b[208:])
	e.CipherAlgo = le.Uint32(b[216:])
	return nil
}

// ID returns the blob id with trailing NULs removed.
func (e *BlobEntry) ID() string { return trimNUL(e.BlobID[:]) }

// SetID stores id (at most 64 bytes, zero padded).
func (e *BlobEntry) SetID(id string) { e.BlobID = [64]byte{}; copy(e.BlobID[:], id) }

// CIEntrySize returns the size of one chunk-info entry in the blob's ci array.
func (e *BlobEntry) CIEntrySize() uint64 {
	if e.Features&BlobChunkInfoV2 != 0 {
		return ChunkInfoV2Size
	}
	return ChunkInfoV1Size
}

// Validate applies the per-entry checks nydusd applies. index is the
// entry's position and chunkSize the superblock chunk size.
func (e *BlobEntry) Validate(index int, chunkSize uint32) error {
	id := e.ID()
	if err := e.Features.Validate(); err != nil {
		return errorf("blob %d (%s): %v", index, id, err)
	}
	switch {
	case e.BlobIndex != uint32(index):
		return errorf("blob %d (%s) records index %d", index, id, e.BlobIndex)
	case e.ChunkSize != chunkSize:
		return errorf("blob %d (%s) chunk size %#x differs from the superblock's %#x", index, id, e.ChunkSize, chunkSize)
	case e.ChunkCount > MaxChunksPerBlob:
		return errorf("blob %d (%s) has %d chunks (max %d)", index, id, e.ChunkCount, MaxChunksPerBlob)
	case e.Compressor > CompressZstd:
		return errorf("blob %d (%s) has unknown compressor %d", index, id, e.Compressor)
	case e.Digester > DigestSHA256:
		return errorf("blob %d (%s) has unknown digester %d", index, id, e.Digester)
	case e.CompressedSize > 1<<40:
		return errorf("blob %d (%s) compressed size %d too large", index, id, e.CompressedSize)
	case e.UncompressedSize > 1<<44:
		return errorf("blob %d (%s) uncompressed size %d too large", index, id, e.UncompressedSize)
	case e.CICompressedSize > e.CIUncompressedSize && e.CIUncompressedSize != 0:
		return errorf("blob %d (%s) ci compressed size %d exceeds uncompressed %d", index, id, e.CICompressedSize, e.CIUncompressedSize)
	}
	f := e.Features
	special := f&(BlobZran|BlobBatch|BlobEncrypted) != 0
	if special && f&BlobChunkInfoV2 == 0 {
		return errorf("blob %d (%s) features %#x need CHUNK_INFO_V2", index, id, uint32(f))
	}
	if f&(BlobChunkdictGenerated|BlobTarfs) == 0 && e.CIUncompressedSize != 0 {
		switch {
		case f&BlobChunkInfoV2 != 0 && !special && e.CIUncompressedSize != uint64(e.ChunkCount)*ChunkInfoV2Size:
			return errorf("blob %d (%s) ci size %d != %d chunks x %d", index, id, e.CIUncompressedSize, e.ChunkCount, ChunkInfoV2Size)
		case f&BlobChunkInfoV2 == 0 && e.CIUncompressedSize != uint64(e.ChunkCount)*ChunkInfoV1Size:
			return errorf("blob %d (%s) ci size %d != %d chunks x %d", index, id, e.CIUncompressedSize, e.ChunkCount, ChunkInfoV1Size)
		}
	}
	return nil
}
