package layout

import (
	"fmt"
	"strconv"
)

// Section names used in blob tails.
const (
	SectionBlob       = "image.blob"
	SectionMeta       = "blob.meta"
	SectionMetaHeader = "blob.meta.header"
	SectionDigest     = "blob.digest"
	SectionBootstrap  = "image.boot"
	SectionTOC        = "rafs.blob.toc"
)

// TarHeaderSize is the size of the GNU tar headers framing blob sections.
const TarHeaderSize = 512

// TOCEntrySize is the size of one blob ToC entry.
const TOCEntrySize = 128

// ToC entry compression flags.
const (
	TOCCompressNone = 0x1
	TOCCompressZstd = 0x2
	TOCCompressLZ4  = 0x4
)

// TOCEntry is one 128-byte entry of the blob table of contents.
type TOCEntry struct {
	Flags            uint32
	Name             string
	UncompressedHash [32]byte // sha256 of the uncompressed section
	CompressedOffset uint64
	CompressedSize   uint64
	UncompressedSize uint64
}

// Marshal encodes the entry into b (TOCEntrySize bytes).
func (t *TOCEntry) Marshal(b []byte) {
	_ = b[TOCEntrySize-1]
	clear(b[:TOCEntrySize])
	le.PutUint32(b[0:], t.Flags)
	copy(b[8:24], t.Name)
	copy(b[24:56], t.UncompressedHash[:])
	le.PutUint64(b[56:], t.CompressedOffset)
	le.PutUint64(b[64:], t.CompressedSize)
	le.PutUint64(b[72:], t.UncompressedSize)
}

// Unmarshal decodes an entry from b.
func (t *TOCEntry) Unmarshal(b []byte) error {
	if len(b) < TOCEntrySize {
		return ErrShortBuffer
	}
	t.Flags = le.Uint32(b[0:])
	t.Name = trimNUL(b[8:24])
	copy(t.UncompressedHash[:], b[24:56])
	t.CompressedOffset = le.Uint64(b[56:])
	t.CompressedSize = le.Uint64(b[64:])
	t.UncompressedSize = le.Uint64(b[72:])
	return nil
}

// SectionHeader builds the GNU tar header that follows a blob section of
// the given name and size.
func SectionHeader(name string, size uint64) [TarHeaderSize]byte {
	var h [TarHeaderSize]byte
	copy(h[0:100], name)
	// mode, uid, gid are left as NUL bytes, as upstream writes them.
	copy(h[124:136], fmt.Sprintf("%011o\x00", size))
	copy(h[136:148], "00000000000\x00")
	h[156] = '0'
	copy(h[257:263], "ustar ")
	copy(h[263:265], " \x00")
	// Checksum: sum of all bytes with the checksum field as spaces.
	copy(h[148:156], "        ")
	var sum uint32
	for _, c := range h {
		sum += uint32(c)
	}
	copy(h[148:156], fmt.Sprintf("%07o\x00", sum))
	return h
}

// ParseSectionHeader decodes a section tar header, returning its name and
// data size. It checks the checksum.
func ParseSectionHeader(h []byte) (name string, size uint64, err error) {
	if len(h) < TarHeaderSize {
		return "", 0, ErrShortBuffer
	}
	var sum uint32
	for i, c := range h[:TarHeaderSize] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += uint32(c)
	}
	stored, err := parseOctal(h[148:156])
	if err != nil || uint32(stored) != sum {
		return "", 0, errorf("bad section tar header checksum")
	}
	size, err = parseOctal(h[124:136])
	if err != nil {
		return "", 0, errorf("bad section tar header size: %v", err)
	}
	return trimNUL(h[0:100]), size, nil
}

func parseOctal(b []byte) (uint64, error) {
	i, j := 0, len(b)
	for i < j && (b[i] == ' ' || b[i] == 0) {
		i++
	}
	for j > i && (b[j-1] == ' ' || b[j-1] == 0) {
		j--
	}
	if i == j {
		return 0, nil
	}
	return strconv.ParseUint(string(b[i:j]), 8, 64)
}
