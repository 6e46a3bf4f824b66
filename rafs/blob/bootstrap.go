package blob

import (
	"bytes"
	"fmt"
	"io"

	"github.com/gonydus/nydus/rafs/layout"
)

// PlaceholderID is the blob id an inline bootstrap records for its own
// blob: the real id (the blob's sha256) is unknown while it is written.
const PlaceholderID = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

// InlineBootstrap extracts the bootstrap embedded in a blob built with
// --blob-inline-meta.
func InlineBootstrap(ra io.ReaderAt, size int64) ([]byte, error) {
	return ReadSection(ra, size, layout.SectionBootstrap)
}

// IsBootstrap reports whether b starts like a RAFS v6 bootstrap (the EROFS
// magic at offset 1024) rather than a data blob.
func IsBootstrap(ra io.ReaderAt, size int64) bool {
	if size < layout.SuperBlockOffset+4 {
		return false
	}
	var m [4]byte
	if _, err := ra.ReadAt(m[:], layout.SuperBlockOffset); err != nil {
		return false
	}
	return m == [4]byte{0xe2, 0xe1, 0xf5, 0xe0}
}

// ResolvePlaceholder rewrites, in the bootstrap bytes boot, the blob-table
// entries and device slots that carry PlaceholderID to carry id instead.
// It returns how many blobs it rewrote.
func ResolvePlaceholder(boot []byte, id string) (int, error) {
	if len(id) != 64 {
		return 0, fmt.Errorf("blob: blob id %q is not 64 characters", id)
	}
	if len(boot) < layout.BlockSize {
		return 0, fmt.Errorf("%w: bootstrap of %d bytes", layout.ErrFormat, len(boot))
	}
	var sb layout.SuperBlock
	var ext layout.ExtSuperBlock
	_ = sb.Unmarshal(boot[layout.SuperBlockOffset:])
	_ = ext.Unmarshal(boot[layout.ExtSuperBlockOffset:])
	n := int(ext.BlobTableSize / layout.BlobEntrySize)
	if int(sb.ExtraDevices) != n || ext.BlobTableOffset+uint64(ext.BlobTableSize) > uint64(len(boot)) ||
		layout.DeviceTableOffset+n*layout.DeviceSlotSize > len(boot) {
		return 0, fmt.Errorf("%w: bootstrap blob or device table is inconsistent", layout.ErrFormat)
	}
	ph := []byte(PlaceholderID)
	count := 0
	for i := range n {
		e := boot[ext.BlobTableOffset+uint64(i*layout.BlobEntrySize):]
		if bytes.Equal(e[:64], ph) {
			copy(e[:64], id)
			count++
		}
		d := boot[layout.DeviceTableOffset+i*layout.DeviceSlotSize:]
		if bytes.Equal(d[:64], ph) {
			copy(d[:64], id)
		}
	}
	return count, nil
}
