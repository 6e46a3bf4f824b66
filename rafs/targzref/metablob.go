package targzref

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	"github.com/gonydus/nydus/rafs/compress"
	"github.com/gonydus/nydus/rafs/layout"
)

// metaWriter writes the RAFS blob of a zran layer (upstream's "meta
// blob"): [ci data][blob.meta header][tar blob.meta][chunk digests][tar
// blob.digest][inline bootstrap][tar image.boot][ToC][tar rafs.blob.toc],
// the tar headers and ToC only with toc (or an inline bootstrap), as
// upstream's builder does for SEPARATE blobs (no image.blob section).
type metaWriter struct {
	w    io.Writer
	n    uint64
	hash hash.Hash
	toc  []layout.TOCEntry
	err  error
}

func newMetaWriter(w io.Writer) *metaWriter { return &metaWriter{w: w, hash: sha256.New()} }

func (m *metaWriter) write(p []byte) {
	if m.err != nil {
		return
	}
	k, err := m.w.Write(p)
	m.n += uint64(k)
	m.hash.Write(p[:k])
	if err != nil {
		m.err = fmt.Errorf("targzref: write RAFS blob: %w", err)
	}
}

func (m *metaWriter) section(name string, data []byte) {
	m.write(data)
	hdr := layout.SectionHeader(name, uint64(len(data)))
	m.write(hdr[:])
}

func (m *metaWriter) id() string { return hex.EncodeToString(m.hash.Sum(nil)) }

// writeMeta writes the zstd blob.meta (ci data + header) and, with toc,
// its tar header, ToC entries and the chunk digests; it fills entry's ci
// fields.
func (m *metaWriter) writeMeta(entry *layout.BlobEntry, ci []byte, extOffset, extSize uint64, extCount uint32, digests []byte, framed, toc bool) error {
	stored, ciComp := ci, layout.CompressNone
	c, err := compressMeta(ci)
	if err != nil {
		return err
	}
	if len(c) < len(ci) {
		stored, ciComp = c, layout.CompressZstd
	}
	entry.CICompressor = ciComp
	entry.CIOffset = m.n
	entry.CICompressedSize = uint64(len(stored))
	entry.CIUncompressedSize = uint64(len(ci))
	hdr := layout.CCTHeader{Features: entry.Features, CICompressor: ciComp, CIEntries: entry.ChunkCount,
		CIOffset: entry.CIOffset, CICompressedSize: entry.CICompressedSize, CIUncompressedSize: entry.CIUncompressedSize,
		ExtOffset: extOffset, ExtSize: extSize, ExtCount: extCount}
	var hb [layout.CCTHeaderSize]byte
	hdr.Marshal(hb[:])
	m.write(stored)
	m.write(hb[:])
	if framed {
		h := layout.SectionHeader(layout.SectionMeta, uint64(len(stored)+len(hb)))
		m.write(h[:])
	}
	if !toc {
		return m.err
	}
	flags := uint32(layout.TOCCompressNone)
	if ciComp == layout.CompressZstd {
		flags = layout.TOCCompressZstd
	}
	m.toc = append(m.toc,
		layout.TOCEntry{Flags: flags, Name: layout.SectionMeta, UncompressedHash: sha256.Sum256(ci),
			CompressedOffset: entry.CIOffset, CompressedSize: uint64(len(stored)), UncompressedSize: uint64(len(ci))},
		layout.TOCEntry{Flags: layout.TOCCompressNone, Name: layout.SectionMetaHeader, UncompressedHash: sha256.Sum256(hb[:]),
			CompressedOffset: entry.CIOffset + uint64(len(stored)), CompressedSize: layout.CCTHeaderSize, UncompressedSize: layout.CCTHeaderSize})
	off := m.n
	m.section(layout.SectionDigest, digests)
	m.toc = append(m.toc, layout.TOCEntry{Flags: layout.TOCCompressNone, Name: layout.SectionDigest,
		UncompressedHash: sha256.Sum256(digests), CompressedOffset: off, CompressedSize: uint64(len(digests)), UncompressedSize: uint64(len(digests))})
	return m.err
}

// writeBootstrap embeds the bootstrap, zstd-compressed when toc is on and
// that shrinks it.
func (m *metaWriter) writeBootstrap(boot []byte, toc bool) error {
	off := m.n
	stored, flags := boot, uint32(layout.TOCCompressNone)
	if toc {
		z, err := compress.New(layout.CompressZstd)
		if err != nil {
			return err
		}
		if c, err := z.Compress(nil, boot); err == nil && len(c) < len(boot) {
			stored, flags = c, layout.TOCCompressZstd
		}
	}
	m.section(layout.SectionBootstrap, stored)
	if toc {
		m.toc = append(m.toc, layout.TOCEntry{Flags: flags, Name: layout.SectionBootstrap, UncompressedHash: sha256.Sum256(boot),
			CompressedOffset: off, CompressedSize: uint64(len(stored)), UncompressedSize: uint64(len(boot))})
	}
	return m.err
}

// writeTOC writes the ToC and its tar header and records them in entry.
func (m *metaWriter) writeTOC(entry *layout.BlobEntry) error {
	buf := make([]byte, len(m.toc)*layout.TOCEntrySize)
	for i := range m.toc {
		m.toc[i].Marshal(buf[i*layout.TOCEntrySize:])
	}
	m.write(buf)
	hdr := layout.SectionHeader(layout.SectionTOC, uint64(len(buf)))
	m.write(hdr[:])
	entry.TOCDigest = sha256.Sum256(append(buf, hdr[:]...))
	entry.TOCSize = uint32(len(buf) + layout.TarHeaderSize)
	return m.err
}
