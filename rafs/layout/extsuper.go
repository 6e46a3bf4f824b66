package layout

// ExtSuperBlock is the 256-byte RAFS v6 extended superblock at offset 1152.
type ExtSuperBlock struct {
	Flags               SuperFlags
	BlobTableOffset     uint64
	BlobTableSize       uint32
	ChunkSize           uint32
	ChunkTableOffset    uint64
	ChunkTableSize      uint64
	PrefetchTableOffset uint64
	PrefetchTableSize   uint32
}

// Marshal encodes the extended superblock into b (ExtSuperBlockSize bytes).
func (e *ExtSuperBlock) Marshal(b []byte) {
	_ = b[ExtSuperBlockSize-1]
	clear(b[:ExtSuperBlockSize])
	le.PutUint64(b[0:], uint64(e.Flags))
	le.PutUint64(b[8:], e.BlobTableOffset)
	le.PutUint32(b[16:], e.BlobTableSize)
	le.PutUint32(b[20:], e.ChunkSize)
	le.PutUint64(b[24:], e.ChunkTableOffset)
	le.PutUint64(b[32:], e.ChunkTableSize)
	le.PutUint64(b[40:], e.PrefetchTableOffset)
	le.PutUint32(b[48:], e.PrefetchTableSize)
}

// Unmarshal decodes the extended superblock from b.
func (e *ExtSuperBlock) Unmarshal(b []byte) error {
	if len(b) < ExtSuperBlockSize {
		return ErrShortBuffer
	}
	e.Flags = SuperFlags(le.Uint64(b[0:]))
	e.BlobTableOffset = le.Uint64(b[8:])
	e.BlobTableSize = le.Uint32(b[16:])
	e.ChunkSize = le.Uint32(b[20:])
	e.ChunkTableOffset = le.Uint64(b[24:])
	e.ChunkTableSize = le.Uint64(b[32:])
	e.PrefetchTableOffset = le.Uint64(b[40:])
	e.PrefetchTableSize = le.Uint32(b[48:])
	return nil
}

// ValidChunkSize reports whether n is a power of two in [MinChunkSize, MaxChunkSize].
func ValidChunkSize(n uint64) bool {
	return n >= MinChunkSize && n <= MaxChunkSize && n&(n-1) == 0
}

// Validate checks the fields that need no knowledge of the file size.
func (e *ExtSuperBlock) Validate() error {
	if err := e.Flags.Validate(); err != nil {
		return err
	}
	if !ValidChunkSize(uint64(e.ChunkSize)) {
		return errorf("chunk size %#x is not a power of two in [4 KiB, 16 MiB]", e.ChunkSize)
	}
	if e.BlobTableSize%BlobEntrySize != 0 {
		return errorf("blob table size %d is not a multiple of %d", e.BlobTableSize, BlobEntrySize)
	}
	if e.BlobTableSize > 0 && (e.BlobTableOffset < BlockSize || e.BlobTableOffset%BlockSize != 0) {
		return errorf("blob table offset %d is not 4 KiB aligned past block 0", e.BlobTableOffset)
	}
	if e.ChunkTableSize%ChunkInfoSize != 0 {
		return errorf("chunk table size %d is not a multiple of %d", e.ChunkTableSize, ChunkInfoSize)
	}
	if e.ChunkTableSize > 0 && e.ChunkTableOffset%BlockSize != 0 {
		return errorf("chunk table offset %d is not 4 KiB aligned", e.ChunkTableOffset)
	}
	if e.PrefetchTableSize%4 != 0 {
		return errorf("prefetch table size %d is not a multiple of 4", e.PrefetchTableSize)
	}
	return nil
}
