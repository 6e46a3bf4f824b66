package blob

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/gonydus/nydus/rafs/compress"
	"github.com/gonydus/nydus/rafs/layout"
)

// ErrNoSection is returned when a blob has no section of a given name.
var ErrNoSection = errors.New("blob: no such section")

// Limits from nydusd's ToC reader.
const (
	minTOCSize = layout.TarHeaderSize
	maxTOCSize = 0x10000
	// maxSection bounds a section read into memory (a bootstrap may be
	// up to 2 GiB, but nothing in a tail legitimately needs more).
	maxSection = layout.MaxMetadataSize
	// maxHeaders bounds the backward tar-header walk.
	maxHeaders = 64
)

// Section locates one section of a blob tail.
type Section struct {
	Name string
	// Offset and Size give the stored bytes.
	Offset, Size uint64
	// UncompressedSize and Compressor describe what Size bytes expand to.
	UncompressedSize uint64
	Compressor       layout.Compressor
	// Hash is the sha256 of the uncompressed section when HasHash.
	Hash    [32]byte
	HasHash bool
}

// Sections lists the sections of the blob of size bytes in ra, from its
// ToC when it has one, otherwise from its tar headers.
func Sections(ra io.ReaderAt, size int64) ([]Section, error) {
	secs, err := fromTOC(ra, size)
	if err == nil {
		return secs, nil
	}
	if !errors.Is(err, errNoTOC) {
		return nil, err
	}
	return fromHeaders(ra, size)
}

var errNoTOC = errors.New("blob: no ToC")

func readAt(ra io.ReaderAt, off, n uint64, size int64) ([]byte, error) {
	if off > uint64(size) || n > uint64(size)-off {
		return nil, fmt.Errorf("%w: blob range [%d,+%d) past the %d-byte blob", layout.ErrFormat, off, n, size)
	}
	if n > maxSection {
		return nil, fmt.Errorf("%w: blob section of %d bytes is too large", layout.ErrFormat, n)
	}
	b := make([]byte, n)
	if _, err := ra.ReadAt(b, int64(off)); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, fmt.Errorf("blob: read [%d,+%d): %w", off, n, err)
	}
	return b, nil
}

func fromTOC(ra io.ReaderAt, size int64) ([]Section, error) {
	if size < layout.TarHeaderSize {
		return nil, errNoTOC
	}
	hdr, err := readAt(ra, uint64(size)-layout.TarHeaderSize, layout.TarHeaderSize, size)
	if err != nil {
		return nil, err
	}
	name, n, err := layout.ParseSectionHeader(hdr)
	if err != nil || name != layout.SectionTOC {
		return nil, errNoTOC
	}
	total := n + layout.TarHeaderSize
	if total < minTOCSize || total > maxTOCSize || n%layout.TOCEntrySize != 0 || n > uint64(size)-layout.TarHeaderSize {
		return nil, fmt.Errorf("%w: ToC of %d bytes is malformed", layout.ErrFormat, n)
	}
	b, err := readAt(ra, uint64(size)-total, n, size)
	if err != nil {
		return nil, err
	}
	var out []Section
	for i := uint64(0); i < n; i += layout.TOCEntrySize {
		var e layout.TOCEntry
		_ = e.Unmarshal(b[i:])
		s := Section{Name: e.Name, Offset: e.CompressedOffset, Size: e.CompressedSize,
			UncompressedSize: e.UncompressedSize, Hash: e.UncompressedHash, HasHash: true}
		switch e.Flags & 0x7 {
		case layout.TOCCompressNone, 0:
			s.Compressor = layout.CompressNone
		case layout.TOCCompressZstd:
			s.Compressor = layout.CompressZstd
		case layout.TOCCompressLZ4:
			s.Compressor = layout.CompressLZ4
		default:
			return nil, fmt.Errorf("%w: ToC entry %q has flags %#x", layout.ErrFormat, e.Name, e.Flags)
		}
		if s.Name == layout.SectionBlob {
			// Old builders recorded a wrong offset; chunk data always starts at 0.
			s.Offset = 0
			s.HasHash = false // the hash covers the data plus its tar header
		}
		if s.Offset > uint64(size) || s.Size > uint64(size)-s.Offset {
			return nil, fmt.Errorf("%w: ToC entry %q [%d,+%d) lies past the %d-byte blob", layout.ErrFormat, s.Name, s.Offset, s.Size, size)
		}
		out = append(out, s)
	}
	return out, nil
}

func fromHeaders(ra io.ReaderAt, size int64) ([]Section, error) {
	var out []Section
	end := uint64(size)
	for range maxHeaders {
		if end < layout.TarHeaderSize {
			break
		}
		hdr, err := readAt(ra, end-layout.TarHeaderSize, layout.TarHeaderSize, size)
		if err != nil {
			return nil, err
		}
		name, n, err := layout.ParseSectionHeader(hdr)
		if err != nil {
			if len(out) == 0 {
				return nil, fmt.Errorf("blob: no ToC and no section header at the end: %w", err)
			}
			break
		}
		dataEnd := end - layout.TarHeaderSize
		if n > dataEnd {
			return nil, fmt.Errorf("%w: section %q of %d bytes starts before the blob", layout.ErrFormat, name, n)
		}
		s := Section{Name: name, Offset: dataEnd - n, Size: n, UncompressedSize: n, Compressor: layout.CompressNone}
		out = append(out, s)
		end = s.Offset
		if name == layout.SectionBlob || end == 0 {
			break
		}
	}
	// Report in blob order.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Find returns the section called name.
func Find(secs []Section, name string) (Section, error) {
	for _, s := range secs {
		if s.Name == name {
			return s, nil
		}
	}
	return Section{}, fmt.Errorf("%w: %s", ErrNoSection, name)
}

// Read returns a section's uncompressed bytes, verified against its hash
// when the ToC records one.
func Read(ra io.ReaderAt, size int64, s Section) ([]byte, error) {
	stored, err := readAt(ra, s.Offset, s.Size, size)
	if err != nil {
		return nil, err
	}
	data := stored
	if s.Compressor != layout.CompressNone {
		if s.UncompressedSize > maxSection {
			return nil, fmt.Errorf("%w: section %q expands to %d bytes", layout.ErrFormat, s.Name, s.UncompressedSize)
		}
		codec, err := compress.New(s.Compressor)
		if err != nil {
			return nil, err
		}
		if data, err = codec.Decompress(nil, stored, int(s.UncompressedSize)); err != nil {
			return nil, fmt.Errorf("blob: section %q: %w", s.Name, err)
		}
	}
	if uint64(len(data)) != s.UncompressedSize {
		return nil, fmt.Errorf("%w: section %q holds %d bytes, want %d", layout.ErrFormat, s.Name, len(data), s.UncompressedSize)
	}
	if s.HasHash && sha256.Sum256(data) != s.Hash {
		return nil, fmt.Errorf("%w: section %q does not match its ToC sha256", layout.ErrFormat, s.Name)
	}
	return data, nil
}

// ReadSection finds and reads the section called name.
func ReadSection(ra io.ReaderAt, size int64, name string) ([]byte, error) {
	secs, err := Sections(ra, size)
	if err != nil {
		return nil, err
	}
	s, err := Find(secs, name)
	if err != nil {
		return nil, err
	}
	return Read(ra, size, s)
}
