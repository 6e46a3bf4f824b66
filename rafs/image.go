package rafs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/gonydus/nydus/rafs/layout"
)

// Image is an opened RAFS v6 bootstrap.
type Image struct {
	ra       io.ReaderAt
	size     int64
	sb       layout.SuperBlock
	ext      layout.ExtSuperBlock
	bs       uint64
	metaBase uint64
	blobs    []*layout.BlobEntry
	devices  []layout.DeviceSlot
	prefetch []uint64

	chunkOnce sync.Once
	chunkMap  map[uint64]uint32
	chunkErr  error
}

// Option configures Open.
type Option func(*config) error

type config struct {
	memLimit int64
}

// WithInMemoryLimit loads bootstraps of at most n bytes into memory at Open
// (default 64 MiB); larger ones are read on demand. 0 always reads on demand.
func WithInMemoryLimit(n int64) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("rafs: negative in-memory limit %d", n)
		}
		c.memLimit = n
		return nil
	}
}

// Open validates the bootstrap of size bytes in ra and returns the image.
func Open(ra io.ReaderAt, size int64, opts ...Option) (*Image, error) {
	cfg := config{memLimit: 64 << 20}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	var head [8]byte
	if size >= 8 {
		if _, err := ra.ReadAt(head[:], 0); err != nil {
			return nil, fmt.Errorf("rafs: read bootstrap: %w", err)
		}
		if binary.LittleEndian.Uint32(head[:]) == layout.RafsV5Magic {
			return nil, ErrV5
		}
	}
	if size < layout.BlockSize {
		return nil, formatErr("bootstrap of %d bytes is truncated (less than one 4096-byte block)", size)
	}
	if size > layout.MaxMetadataSize {
		return nil, formatErr("bootstrap of %d bytes exceeds the 2 GiB limit", size)
	}
	if size <= cfg.memLimit {
		buf := make([]byte, size)
		if _, err := ra.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF)) {
			return nil, fmt.Errorf("rafs: read bootstrap: %w", err)
		}
		ra = byteReaderAt(buf)
	}
	m := &Image{ra: ra, size: size}
	if err := m.load(); err != nil {
		return nil, err
	}
	return m, nil
}

// byteReaderAt is an in-memory bootstrap.
type byteReaderAt []byte

func (b byteReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// read returns n bytes at off, or a format error when they lie outside the
// bootstrap.
func (m *Image) read(off, n uint64, what string) ([]byte, error) {
	if off > uint64(m.size) || n > uint64(m.size)-off {
		return nil, formatErr("%s [%d, +%d) lies outside the %d-byte bootstrap", what, off, n, m.size)
	}
	if b, ok := m.ra.(byteReaderAt); ok {
		return b[off : off+n : off+n], nil
	}
	buf := make([]byte, n)
	if _, err := m.ra.ReadAt(buf, int64(off)); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, fmt.Errorf("rafs: read %s: %w", what, err)
	}
	return buf, nil
}

func (m *Image) load() error {
	blk, err := m.read(0, layout.BlockSize, "superblock")
	if err != nil {
		return err
	}
	_ = m.sb.Unmarshal(blk[layout.SuperBlockOffset:])
	_ = m.ext.Unmarshal(blk[layout.ExtSuperBlockOffset:])
	if err := m.sb.Validate(); err != nil {
		return fmt.Errorf("rafs: superblock: %w", err)
	}
	if m.sb.BlkSzBits != layout.BlockBits {
		return formatErr("block size 2^%d (tarfs mode) is not supported", m.sb.BlkSzBits)
	}
	if err := m.ext.Validate(); err != nil {
		return fmt.Errorf("rafs: extended superblock: %w", err)
	}
	if m.ext.Flags&layout.FlagTarfsMode != 0 {
		return formatErr("tarfs-mode images are not supported")
	}
	m.bs = m.sb.BlockSize()
	if uint64(m.size)%m.bs != 0 {
		return formatErr("bootstrap size %d is not a multiple of the %d-byte block", m.size, m.bs)
	}
	m.metaBase = uint64(m.sb.MetaBlkAddr) * m.bs
	if m.metaBase == 0 || m.metaBase >= uint64(m.size) {
		return formatErr("meta_blkaddr %d lies outside the bootstrap", m.sb.MetaBlkAddr)
	}
	if m.sb.Inos > uint64(m.size)/layout.InodeSlotSize {
		return formatErr("inode count %d cannot fit in %d bytes", m.sb.Inos, m.size)
	}
	if err := m.loadBlobs(); err != nil {
		return err
	}
	if err := m.checkTables(); err != nil {
		return err
	}
	if err := m.loadPrefetch(); err != nil {
		return err
	}
	root, err := m.Inode(m.Root())
	if err != nil {
		return fmt.Errorf("rafs: root inode: %w", err)
	}
	if !root.IsDir() {
		return formatErr("root inode %d is not a directory (mode %#o)", m.Root(), root.Mode)
	}
	return nil
}

func (m *Image) loadBlobs() error {
	n := uint64(m.ext.BlobTableSize) / layout.BlobEntrySize
	if n > layout.MaxBlobs {
		return formatErr("blob table holds %d entries (max %d)", n, layout.MaxBlobs)
	}
	if uint64(m.sb.ExtraDevices) != n {
		return formatErr("device table has %d slots but blob table %d entries", m.sb.ExtraDevices, n)
	}
	if n == 0 {
		return nil
	}
	tb, err := m.read(m.ext.BlobTableOffset, n*layout.BlobEntrySize, "blob table")
	if err != nil {
		return err
	}
	db, err := m.read(layout.DeviceTableOffset, n*layout.DeviceSlotSize, "device table")
	if err != nil {
		return err
	}
	seen := make(map[string]bool, n)
	for i := range int(n) {
		e := new(layout.BlobEntry)
		_ = e.Unmarshal(tb[i*layout.BlobEntrySize:])
		if err := e.Validate(i, m.ext.ChunkSize); err != nil {
			return fmt.Errorf("rafs: blob table: %w", err)
		}
		var d layout.DeviceSlot
		_ = d.Unmarshal(db[i*layout.DeviceSlotSize:])
		if err := d.Validate(); err != nil {
			return fmt.Errorf("rafs: device table: %w", err)
		}
		id := e.ID()
		if tag := string(d.Tag[:]); tag != id {
			return formatErr("device %d tag %q differs from blob id %q", i, tag, id)
		}
		if seen[id] {
			return formatErr("blob %q appears twice in the blob table", id)
		}
		seen[id] = true
		m.blobs = append(m.blobs, e)
		m.devices = append(m.devices, d)
	}
	return nil
}

// checkTables makes sure the tables lie inside the bootstrap, past the
// superblocks and the device table, and do not overlap.
func (m *Image) checkTables() error {
	type span struct {
		name       string
		start, end uint64
	}
	devEnd := uint64(layout.DeviceTableOffset) + uint64(len(m.blobs))*layout.DeviceSlotSize
	spans := []span{{"superblocks and device table", 0, devEnd}}
	add := func(name string, off, n uint64) error {
		if n == 0 {
			return nil
		}
		if off > uint64(m.size) || n > uint64(m.size)-off {
			return formatErr("%s [%d, +%d) lies outside the %d-byte bootstrap", name, off, n, m.size)
		}
		spans = append(spans, span{name, off, off + n})
		return nil
	}
	if err := add("blob table", m.ext.BlobTableOffset, uint64(m.ext.BlobTableSize)); err != nil {
		return err
	}
	if err := add("chunk table", m.ext.ChunkTableOffset, m.ext.ChunkTableSize); err != nil {
		return err
	}
	if err := add("prefetch table", m.ext.PrefetchTableOffset, uint64(m.ext.PrefetchTableSize)); err != nil {
		return err
	}
	if devEnd > uint64(m.size) {
		return formatErr("device table ends at %d past the %d-byte bootstrap", devEnd, m.size)
	}
	for i := range spans {
		for j := i + 1; j < len(spans); j++ {
			a, b := spans[i], spans[j]
			if a.start < b.end && b.start < a.end {
				return formatErr("%s [%d,%d) overlaps %s [%d,%d)", a.name, a.start, a.end, b.name, b.start, b.end)
			}
		}
	}
	return nil
}

func (m *Image) loadPrefetch() error {
	n := uint64(m.ext.PrefetchTableSize) / 4
	if n == 0 {
		return nil
	}
	b, err := m.read(m.ext.PrefetchTableOffset, n*4, "prefetch table")
	if err != nil {
		return err
	}
	m.prefetch = make([]uint64, 0, n)
	for i := range n {
		nid := uint64(binary.LittleEndian.Uint32(b[i*4:]))
		if _, err := m.inodeOffset(nid); err != nil {
			return fmt.Errorf("rafs: prefetch table entry %d: %w", i, err)
		}
		m.prefetch = append(m.prefetch, nid)
	}
	return nil
}

// Root returns the nid of the root directory.
func (m *Image) Root() uint64 { return uint64(m.sb.RootNid) }

// SuperBlock returns the EROFS superblock.
func (m *Image) SuperBlock() layout.SuperBlock { return m.sb }

// ExtSuperBlock returns the RAFS v6 extended superblock.
func (m *Image) ExtSuperBlock() layout.ExtSuperBlock { return m.ext }

// Flags returns the RAFS superblock flags.
func (m *Image) Flags() layout.SuperFlags { return m.ext.Flags }

// ExplicitUIDGID reports whether owners are recorded; without it a mount
// presents every file as owned by the mounting user.
func (m *Image) ExplicitUIDGID() bool { return m.ext.Flags&layout.FlagExplicitUIDGID != 0 }

// ChunkSize returns the image's chunk size.
func (m *Image) ChunkSize() uint32 { return m.ext.ChunkSize }

// Inodes returns the number of inodes the superblock records.
func (m *Image) Inodes() uint64 { return m.sb.Inos }

// Bootstrap returns the bootstrap's bytes, as Open was given them.
func (m *Image) Bootstrap() *io.SectionReader { return io.NewSectionReader(m.ra, 0, m.size) }

// Size returns the bootstrap size.
func (m *Image) Size() int64 { return m.size }

// Blobs returns the blob table. Callers must not modify the entries.
func (m *Image) Blobs() []*layout.BlobEntry { return m.blobs }

// Devices returns the EROFS device table (one slot per blob).
func (m *Image) Devices() []layout.DeviceSlot { return m.devices }

// PrefetchTable returns the nids listed in the prefetch table.
func (m *Image) PrefetchTable() []uint64 { return m.prefetch }
