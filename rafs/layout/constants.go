package layout

// Block geometry.
const (
	// BlockBits is log2 of the RAFS v6 block size used by chunk-based images.
	BlockBits = 12
	// BlockSize is the RAFS v6 block size (4 KiB).
	BlockSize = 1 << BlockBits
	// TarfsBlockBits is log2 of the block size of tar-tarfs images.
	TarfsBlockBits = 9
)

// Fixed offsets inside a bootstrap.
const (
	// SuperBlockOffset is where the EROFS superblock starts.
	SuperBlockOffset = 1024
	// SuperBlockSize is the size of the EROFS superblock.
	SuperBlockSize = 128
	// ExtSuperBlockOffset is where the RAFS v6 extended superblock starts.
	ExtSuperBlockOffset = SuperBlockOffset + SuperBlockSize
	// ExtSuperBlockSize is the size of the RAFS v6 extended superblock.
	ExtSuperBlockSize = 256
	// DeviceTableOffset is where the EROFS device table starts.
	DeviceTableOffset = ExtSuperBlockOffset + ExtSuperBlockSize
	// DeviceSlotSize is the size of one device-table slot.
	DeviceSlotSize = 128
	// DeviceSlotOffset is the devt_slotoff value that places the device
	// table at DeviceTableOffset.
	DeviceSlotOffset = DeviceTableOffset / DeviceSlotSize
	// BlobEntrySize is the size of one RAFS blob-table entry.
	BlobEntrySize = 256
	// ChunkInfoSize is the size of one entry of the bootstrap chunk table.
	ChunkInfoSize = 80
	// ChunkIndexSize is the size of one chunk index of a chunk-based inode.
	ChunkIndexSize = 8
	// InodeSlotSize is the granularity of inode addressing (nid units).
	InodeSlotSize = 32
	// CompactInodeSize is the size of a compact EROFS inode.
	CompactInodeSize = 32
	// ExtendedInodeSize is the size of an extended EROFS inode.
	ExtendedInodeSize = 64
	// DirentSize is the size of one EROFS directory entry.
	DirentSize = 12
	// XattrIbodyHeaderSize is the size of the inline xattr header.
	XattrIbodyHeaderSize = 12
	// XattrEntrySize is the size of an xattr entry header.
	XattrEntrySize = 4
	// RootNid is the nid of the root inode in every upstream-built image.
	RootNid = 128
	// MaxBlobs is the maximum number of data blobs in one bootstrap.
	MaxBlobs = 255
	// MaxChunksPerBlob bounds the chunk-info index (24 bits).
	MaxChunksPerBlob = 1 << 24
	// MaxMetadataSize bounds a bootstrap.
	MaxMetadataSize = 0x8000_0000
)

// Magic numbers.
const (
	// ErofsMagic is the EROFS superblock magic.
	ErofsMagic = 0xE0F5E1E2
	// RafsV5Magic is the RAFS v5 superblock magic ("RAFS" little-endian).
	RafsV5Magic = 0x52414653
	// CCTMagic is the magic of the blob compression-context header.
	CCTMagic = 0xB10BB10B
)

// EROFS superblock feature bits used by RAFS v6.
const (
	// FeatureCompatRafsV6 marks a RAFS v6 bootstrap.
	FeatureCompatRafsV6 = 0x4000_0000
	// FeatureIncompatChunkedFile enables chunk-based regular files.
	FeatureIncompatChunkedFile = 0x4
	// FeatureIncompatDeviceTable enables the device table.
	FeatureIncompatDeviceTable = 0x8
	// FeatureIncompatRafsV6 is the exact incompat value nydusd requires.
	FeatureIncompatRafsV6 = FeatureIncompatChunkedFile | FeatureIncompatDeviceTable
)

// Chunk sizes.
const (
	MinChunkSize     = 0x1000
	MaxChunkSize     = 0x100_0000
	DefaultChunkSize = 0x10_0000
)

// SuperFlags are the RAFS superblock flags (RafsSuperFlags).
type SuperFlags uint64

// RafsSuperFlags bits.
const (
	FlagCompressionNone    SuperFlags = 0x1
	FlagCompressionLZ4     SuperFlags = 0x2
	FlagHashBlake3         SuperFlags = 0x4
	FlagHashSHA256         SuperFlags = 0x8
	FlagExplicitUIDGID     SuperFlags = 0x10
	FlagHasXattr           SuperFlags = 0x20
	FlagCompressionGzip    SuperFlags = 0x40
	FlagCompressionZstd    SuperFlags = 0x80
	FlagInlinedChunkDigest SuperFlags = 0x100
	FlagTarfsMode          SuperFlags = 0x200
	FlagEncryptionNone     SuperFlags = 0x0100_0000
	FlagEncryptionAES128   SuperFlags = 0x0200_0000

	// superFlagsKnown is every bit a reader accepts (reserved compat bits included).
	superFlagsKnown SuperFlags = 0x3ff | 0xff00_0000
	compressionMask SuperFlags = FlagCompressionNone | FlagCompressionLZ4 | FlagCompressionGzip | FlagCompressionZstd
	hashMask        SuperFlags = FlagHashBlake3 | FlagHashSHA256
)

// Compressor identifies a chunk compression algorithm.
type Compressor uint32

// Compression algorithms as stored in blob-table entries and CCT headers.
const (
	CompressNone Compressor = 0
	CompressLZ4  Compressor = 1
	CompressGzip Compressor = 2
	CompressZstd Compressor = 3
)

// String returns the upstream name of the algorithm.
func (c Compressor) String() string {
	switch c {
	case CompressNone:
		return "none"
	case CompressLZ4:
		return "lz4_block"
	case CompressGzip:
		return "gzip"
	case CompressZstd:
		return "zstd"
	}
	return "unknown"
}

// ParseCompressor maps an upstream name to a Compressor.
func ParseCompressor(name string) (Compressor, error) {
	switch name {
	case "none":
		return CompressNone, nil
	case "lz4_block", "lz4":
		return CompressLZ4, nil
	case "gzip":
		return CompressGzip, nil
	case "zstd":
		return CompressZstd, nil
	}
	return 0, errorf("unknown compressor %q (want none, lz4_block or zstd)", name)
}

// SuperFlag returns the RafsSuperFlags bit for the compressor.
func (c Compressor) SuperFlag() SuperFlags {
	switch c {
	case CompressLZ4:
		return FlagCompressionLZ4
	case CompressGzip:
		return FlagCompressionGzip
	case CompressZstd:
		return FlagCompressionZstd
	}
	return FlagCompressionNone
}

// Digester identifies a chunk digest algorithm.
type Digester uint32

// Digest algorithms as stored in blob-table entries.
const (
	DigestBlake3 Digester = 0
	DigestSHA256 Digester = 1
)

// String returns the upstream name of the algorithm.
func (d Digester) String() string {
	switch d {
	case DigestBlake3:
		return "blake3"
	case DigestSHA256:
		return "sha256"
	}
	return "unknown"
}

// ParseDigester maps an upstream name to a Digester.
func ParseDigester(name string) (Digester, error) {
	switch name {
	case "blake3":
		return DigestBlake3, nil
	case "sha256":
		return DigestSHA256, nil
	}
	return 0, errorf("unknown digester %q (want blake3 or sha256)", name)
}

// SuperFlag returns the RafsSuperFlags bit for the digester.
func (d Digester) SuperFlag() SuperFlags {
	if d == DigestSHA256 {
		return FlagHashSHA256
	}
	return FlagHashBlake3
}

// Compressor returns the compression algorithm named by the flags.
func (f SuperFlags) Compressor() Compressor {
	switch {
	case f&FlagCompressionLZ4 != 0:
		return CompressLZ4
	case f&FlagCompressionGzip != 0:
		return CompressGzip
	case f&FlagCompressionZstd != 0:
		return CompressZstd
	}
	return CompressNone
}

// Digester returns the digest algorithm named by the flags.
func (f SuperFlags) Digester() Digester {
	if f&FlagHashSHA256 != 0 {
		return DigestSHA256
	}
	return DigestBlake3
}

// Validate checks that exactly one compression and one hash bit are set and
// that no unknown bit is present.
func (f SuperFlags) Validate() error {
	if f&^superFlagsKnown != 0 {
		return errorf("unknown superblock flags %#x", uint64(f&^superFlagsKnown))
	}
	if popcount(uint64(f&compressionMask)) != 1 {
		return errorf("superblock flags %#x must name exactly one compressor", uint64(f))
	}
	if popcount(uint64(f&hashMask)) != 1 {
		return errorf("superblock flags %#x must name exactly one digester", uint64(f))
	}
	return nil
}

// BlobFeatures are the per-blob feature bits.
type BlobFeatures uint32

// BlobFeatures bits.
const (
	BlobAligned              BlobFeatures = 0x1
	BlobInlinedFSMeta        BlobFeatures = 0x2
	BlobChunkInfoV2          BlobFeatures = 0x4
	BlobZran                 BlobFeatures = 0x8
	BlobSeparate             BlobFeatures = 0x10
	BlobInlinedChunkDigest   BlobFeatures = 0x20
	BlobTarfs                BlobFeatures = 0x40
	BlobBatch                BlobFeatures = 0x80
	BlobEncrypted            BlobFeatures = 0x100
	BlobChunkdictGenerated   BlobFeatures = 0x200
	BlobSeparatedPrefetch    BlobFeatures = 0x400
	BlobExternal             BlobFeatures = 0x800
	BlobHasTarHeader         BlobFeatures = 0x1000_0000
	BlobHasTOC               BlobFeatures = 0x2000_0000
	BlobCapTarTOC            BlobFeatures = 0x4000_0000
	blobFeatureInternal      BlobFeatures = 0x8000_0000
	blobFeatureIncompatMask  BlobFeatures = 0x0000_ffff
	blobFeatureKnownIncompat BlobFeatures = 0x0fff
)

// Validate rejects unknown incompatible bits and the internal bit.
func (f BlobFeatures) Validate() error {
	if f&blobFeatureIncompatMask&^blobFeatureKnownIncompat != 0 {
		return errorf("unknown incompatible blob features %#x", uint32(f&blobFeatureIncompatMask&^blobFeatureKnownIncompat))
	}
	if f&blobFeatureInternal != 0 {
		return errorf("blob features %#x carry the internal bit", uint32(f))
	}
	return nil
}

// ChunkFlags are the flags of a bootstrap chunk-table entry.
type ChunkFlags uint32

// ChunkFlags bits.
const (
	ChunkCompressed ChunkFlags = 0x1
	ChunkHole       ChunkFlags = 0x2
	ChunkEncrypted  ChunkFlags = 0x4
	ChunkBatch      ChunkFlags = 0x8
	ChunkHasCRC32   ChunkFlags = 0x10
)

// EROFS inode format and data layouts.
const (
	InodeFormatCompact  = 0
	InodeFormatExtended = 1

	LayoutFlatPlain  = 0
	LayoutFlatInline = 2
	LayoutChunkBased = 4
)

// Chunk format word bits of a chunk-based inode.
const (
	ChunkFormatBlkbitsMask = 0x1f
	ChunkFormatIndexes     = 0x20
)

// EROFS directory entry file types.
const (
	FileTypeUnknown = 0
	FileTypeReg     = 1
	FileTypeDir     = 2
	FileTypeChr     = 3
	FileTypeBlk     = 4
	FileTypeFifo    = 5
	FileTypeSock    = 6
	FileTypeSymlink = 7
)

// Unix mode type bits (as stored in i_mode).
const (
	ModeTypeMask = 0o170000
	ModeSock     = 0o140000
	ModeSymlink  = 0o120000
	ModeReg      = 0o100000
	ModeBlk      = 0o060000
	ModeDir      = 0o040000
	ModeChr      = 0o020000
	ModeFifo     = 0o010000
)

// FileTypeOfMode returns the dirent file type for a Unix mode.
func FileTypeOfMode(mode uint32) uint8 {
	switch mode & ModeTypeMask {
	case ModeReg:
		return FileTypeReg
	case ModeDir:
		return FileTypeDir
	case ModeChr:
		return FileTypeChr
	case ModeBlk:
		return FileTypeBlk
	case ModeFifo:
		return FileTypeFifo
	case ModeSock:
		return FileTypeSock
	case ModeSymlink:
		return FileTypeSymlink
	}
	return FileTypeUnknown
}

// ModeOfFileType returns the Unix mode type bits of a dirent file type
// (regular file for an unknown type).
func ModeOfFileType(t uint8) uint32 {
	switch t {
	case FileTypeDir:
		return ModeDir
	case FileTypeChr:
		return ModeChr
	case FileTypeBlk:
		return ModeBlk
	case FileTypeFifo:
		return ModeFifo
	case FileTypeSock:
		return ModeSock
	case FileTypeSymlink:
		return ModeSymlink
	}
	return ModeReg
}

func popcount(v uint64) int {
	n := 0
	for ; v != 0; v &= v - 1 {
		n++
	}
	return n
}
