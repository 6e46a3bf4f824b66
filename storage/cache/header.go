package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// On-disk constants of the chunk_map file.
const (
	HeaderSize      = 4096
	MagicChunkMap   = 0x424D4150 // "BMAP"
	MagicChunkMap2  = 0x434D4150 // "CMAP"
	MagicAllReady   = 0x4D4D4150 // "MMAP"
	ChunkMapVersion = 1

	allReadyOffset = 12

	// MagicTable marks a header that records the digest of the chunk table
	// its bits were set for, at tableDigestOffset (our extension, in bytes
	// upstream keeps zero and ignores).
	MagicTable        = 0x4C425443 // "CTBL"
	tableMagicOffset  = 16
	tableDigestOffset = 20
)

// ErrInvalidChunkMap reports a chunk_map file that cannot be trusted.
var ErrInvalidChunkMap = errors.New("cache: invalid chunk_map")

// Header is the 4096-byte header at the start of a chunk_map file. All
// fields are little-endian u32; the rest of the header is reserved zeros.
type Header struct {
	Magic    uint32
	Version  uint32
	Magic2   uint32
	AllReady uint32
	// Table is the digest of the chunk table the map's bits were set for,
	// when HasTable (see WithTable).
	Table    [32]byte
	HasTable bool
}

// NewHeader returns the header of a fresh chunk map.
func NewHeader() Header {
	return Header{Magic: MagicChunkMap, Version: ChunkMapVersion, Magic2: MagicChunkMap2}
}

// Marshal encodes the header into b (HeaderSize bytes; reserved bytes are zeroed).
func (h *Header) Marshal(b []byte) {
	_ = b[HeaderSize-1]
	clear(b[:HeaderSize])
	binary.LittleEndian.PutUint32(b[0:], h.Magic)
	binary.LittleEndian.PutUint32(b[4:], h.Version)
	binary.LittleEndian.PutUint32(b[8:], h.Magic2)
	binary.LittleEndian.PutUint32(b[12:], h.AllReady)
	if h.HasTable {
		binary.LittleEndian.PutUint32(b[tableMagicOffset:], MagicTable)
		copy(b[tableDigestOffset:], h.Table[:])
	}
}

// ParseHeader decodes and checks a chunk_map header. Version 0 maps (no
// second magic) are accepted as upstream does; any other mismatch is
// ErrInvalidChunkMap.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: header of %d bytes", ErrInvalidChunkMap, len(b))
	}
	h := Header{
		Magic:    binary.LittleEndian.Uint32(b[0:]),
		Version:  binary.LittleEndian.Uint32(b[4:]),
		Magic2:   binary.LittleEndian.Uint32(b[8:]),
		AllReady: binary.LittleEndian.Uint32(b[12:]),
		HasTable: binary.LittleEndian.Uint32(b[tableMagicOffset:]) == MagicTable,
	}
	if h.HasTable {
		copy(h.Table[:], b[tableDigestOffset:])
	}
	if h.Magic != MagicChunkMap {
		return h, fmt.Errorf("%w: magic %#x", ErrInvalidChunkMap, h.Magic)
	}
	if h.Version >= 1 && h.Magic2 != MagicChunkMap2 {
		return h, fmt.Errorf("%w: second magic %#x", ErrInvalidChunkMap, h.Magic2)
	}
	return h, nil
}

// Complete reports whether the header marks every chunk as cached.
func (h *Header) Complete() bool { return h.Version >= 1 && h.AllReady == MagicAllReady }

// MapSize returns the size of the chunk_map file for count chunks.
func MapSize(count uint32) int64 { return HeaderSize + (int64(count)+7)/8 }

// bitPos returns the file offset and mask of chunk i's readiness bit.
func bitPos(i uint32) (off int64, mask byte) {
	return HeaderSize + int64(i/8), 0x80 >> (i % 8)
}
