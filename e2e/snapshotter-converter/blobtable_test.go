package snapshotterconverter

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// RAFS v6 layout facts (upstream's rafs/src/metadata/layout/v6.rs): the
// extended superblock follows the 128-byte EROFS superblock at 1024, and
// holds the blob table's offset (u64 at 8) and size (u32 at 16); each
// blob table entry is 256 bytes.
const (
	extSuperOffset = 1024 + 128
	blobEntrySize  = 256
	blobSeparate   = 0x10
)

// blobRecord is what the tests check of one blob table entry.
type blobRecord struct {
	ID             string
	Features       uint32
	CompressedSize uint64
	TOCSize        uint32
	TOCDigest      string
	MetaDigest     string
	MetaSize       uint64
}

// blobTable parses the blob table of a RAFS v6 bootstrap, by blob id.
func blobTable(boot []byte) (map[string]blobRecord, error) {
	le := binary.LittleEndian
	if len(boot) < extSuperOffset+256 {
		return nil, fmt.Errorf("bootstrap of %d bytes", len(boot))
	}
	off := le.Uint64(boot[extSuperOffset+8:])
	size := uint64(le.Uint32(boot[extSuperOffset+16:]))
	if size%blobEntrySize != 0 || off+size > uint64(len(boot)) {
		return nil, fmt.Errorf("blob table at %d size %d does not fit a %d-byte bootstrap", off, size, len(boot))
	}
	out := map[string]blobRecord{}
	for e := boot[off : off+size]; len(e) > 0; e = e[blobEntrySize:] {
		r := blobRecord{
			ID:             string(bytes.TrimRight(e[:64], "\x00")),
			Features:       le.Uint32(e[84:]),
			CompressedSize: le.Uint64(e[88:]),
			TOCSize:        le.Uint32(e[104:]),
			TOCDigest:      hex.EncodeToString(e[136:168]),
			MetaDigest:     hex.EncodeToString(e[168:200]),
			MetaSize:       le.Uint64(e[200:]),
		}
		out[r.ID] = r
	}
	return out, nil
}

// tocDigest is the sha256 of a Nydus blob's ToC (the rafs.blob.toc entry,
// whose tar header ends the blob), as nydus-snapshotter computes it.
func tocDigest(blob []byte) (string, error) {
	if len(blob) < 512 {
		return "", fmt.Errorf("blob of %d bytes has no ToC", len(blob))
	}
	h, err := tar.NewReader(bytes.NewReader(blob[len(blob)-512:])).Next()
	if err != nil {
		return "", fmt.Errorf("ToC tar header: %w", err)
	}
	if h.Name != "rafs.blob.toc" || h.Size > int64(len(blob)-512) {
		return "", fmt.Errorf("last tar header is %q (%d bytes), not the ToC", h.Name, h.Size)
	}
	end := int64(len(blob) - 512)
	return hexSum(blob[end-h.Size : end]), nil
}
