package layout

import (
	"encoding/hex"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

// TestUpstreamV6Bootstrap decodes the structures of the upstream 2.2
// fixture and checks them against the independently decoded values.
func TestUpstreamV6Bootstrap(t *testing.T) {
	boot := testutil.ReadTestdata(t, "upstream-nydus", "bootstrap/rafs-v6-2.2.boot")
	var sb SuperBlock
	if err := sb.Unmarshal(boot[SuperBlockOffset:]); err != nil {
		t.Fatal(err)
	}
	if err := sb.Validate(); err != nil {
		t.Fatal(err)
	}
	if sb.RootNid != 128 || sb.Inos != 3 || sb.Blocks != 9 || sb.MetaBlkAddr != 2 || sb.ExtraDevices != 1 {
		t.Fatalf("superblock = %+v", sb)
	}
	var ext ExtSuperBlock
	if err := ext.Unmarshal(boot[ExtSuperBlockOffset:]); err != nil {
		t.Fatal(err)
	}
	if err := ext.Validate(); err != nil {
		t.Fatal(err)
	}
	if ext.Flags != 0x194 || ext.BlobTableOffset != 4096 || ext.BlobTableSize != 256 ||
		ext.ChunkSize != 0x100000 || ext.ChunkTableOffset != 16384 || ext.ChunkTableSize != 160 {
		t.Fatalf("ext superblock = %+v", ext)
	}
	if ext.Flags.Compressor() != CompressZstd || ext.Flags.Digester() != DigestBlake3 {
		t.Fatalf("flags decode to %v/%v", ext.Flags.Compressor(), ext.Flags.Digester())
	}
	var dev DeviceSlot
	if err := dev.Unmarshal(boot[DeviceTableOffset:]); err != nil {
		t.Fatal(err)
	}
	if err := dev.Validate(); err != nil {
		t.Fatal(err)
	}
	if dev.Blocks != 9 || dev.MappedBlkAddr != 512 {
		t.Fatalf("device slot = blocks %d mapped %d", dev.Blocks, dev.MappedBlkAddr)
	}
	var be BlobEntry
	if err := be.Unmarshal(boot[ext.BlobTableOffset:]); err != nil {
		t.Fatal(err)
	}
	if err := be.Validate(0, ext.ChunkSize); err != nil {
		t.Fatal(err)
	}
	if be.ID() != trimNUL(dev.Tag[:]) || be.ID()[:6] != "be7d77" {
		t.Fatalf("blob id %q, device tag %q", be.ID(), trimNUL(dev.Tag[:]))
	}
	if be.Compressor != CompressZstd || be.Digester != DigestBlake3 || be.Features != 0x70000021 ||
		be.CompressedSize != 14554 || be.UncompressedSize != 36864 || be.TOCSize != 1024 ||
		be.CIOffset != 8314 || be.CICompressedSize != 32 || be.CIUncompressedSize != 32 || be.ChunkCount != 2 {
		t.Fatalf("blob entry = %+v", be)
	}
	// Chunk table: sorted by digest; index 1 comes first.
	var c0, c1 ChunkInfo
	_ = c0.Unmarshal(boot[ext.ChunkTableOffset:])
	_ = c1.Unmarshal(boot[ext.ChunkTableOffset+ChunkInfoSize:])
	if c0.Index != 1 || c0.CompressedOffset != 4828 || c0.CompressedSize != 2974 || c0.UncompressedOffset != 20480 || c0.UncompressedSize != 13400 || c0.Flags != ChunkCompressed {
		t.Fatalf("chunk table[0] = %+v", c0)
	}
	if c1.Index != 0 || c1.CompressedOffset != 0 || c1.CompressedSize != 4828 || c1.UncompressedOffset != 0 || c1.UncompressedSize != 16931 {
		t.Fatalf("chunk table[1] = %+v", c1)
	}
	// Root inode.
	rootOff := uint64(sb.MetaBlkAddr)*BlockSize + uint64(sb.RootNid)*InodeSlotSize
	var root Inode
	if err := root.Unmarshal(boot[rootOff:]); err != nil {
		t.Fatal(err)
	}
	if !root.Extended() || root.DataLayout() != LayoutFlatInline || root.Size != 67 || root.Mode&ModeTypeMask != ModeDir {
		t.Fatalf("root inode = %+v", root)
	}
	tail := boot[rootOff+uint64(root.CoreSize())+uint64(root.XattrSize()):]
	ents, err := DecodeDirBlock(tail, int(root.Size))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".", "..", "lib.rs", "sync_io.rs"}
	if len(ents) != len(want) {
		t.Fatalf("root entries = %+v", ents)
	}
	for i, e := range ents {
		if e.Name != want[i] {
			t.Fatalf("entry %d = %q want %q", i, e.Name, want[i])
		}
	}
	if ents[2].Nid != 133 || ents[3].Nid != 136 || ents[2].FileType != FileTypeReg {
		t.Fatalf("entries = %+v", ents)
	}
	var lib Inode
	libOff := uint64(sb.MetaBlkAddr)*BlockSize + 133*InodeSlotSize
	_ = lib.Unmarshal(boot[libOff:])
	if lib.Size != 16931 || lib.U != 0x28 || lib.DataLayout() != LayoutChunkBased {
		t.Fatalf("lib.rs inode = %+v", lib)
	}
	idxOff := (libOff + uint64(lib.CoreSize()+lib.XattrSize()) + 7) &^ 7
	var ci ChunkIndex
	if err := ci.Unmarshal(boot[idxOff:]); err != nil {
		t.Fatal(err)
	}
	if ci.BlobIndex != 0 || ci.ChunkIndex != 0 || ci.BlkAddr != 0 || ci.Key() != func() uint64 { k := c1.IndexKey(BlockBits); return k.Key() }() {
		t.Fatalf("lib.rs chunk index = %+v", ci)
	}
}

// TestUpstreamBlobTail decodes the ci array, CCT header and ToC of the
// upstream blob fixture.
func TestUpstreamBlobTail(t *testing.T) {
	blob := testutil.ReadTestdata(t, "upstream-nydus", "blobs/be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef")
	var h CCTHeader
	if err := h.Unmarshal(blob[8346:]); err != nil {
		t.Fatal(err)
	}
	if h.Features != 0x70000021 || h.CIEntries != 2 || h.CIOffset != 8314 || h.CICompressedSize != 32 {
		t.Fatalf("cct header = %+v", h)
	}
	var a, b BlobChunk
	_ = a.UnmarshalV1(blob[8314:])
	_ = b.UnmarshalV1(blob[8314+16:])
	if a.CompressedOffset != 0 || a.CompressedSize != 4828 || a.UncompressedSize != 16931 || a.UncompressedOffset != 0 || !a.Compressed {
		t.Fatalf("ci[0] = %+v", a)
	}
	if b.CompressedOffset != 4828 || b.CompressedSize != 2974 || b.UncompressedSize != 13400 || b.UncompressedOffset != 20480 {
		t.Fatalf("ci[1] = %+v", b)
	}
	var buf [ChunkInfoV1Size]byte
	if err := a.MarshalV1(buf[:]); err != nil || string(buf[:]) != string(blob[8314:8330]) {
		t.Fatalf("v1 re-encode differs: %x vs %x (%v)", buf, blob[8314:8330], err)
	}
	// ToC: last 512 bytes are its tar header, 4 entries before it.
	name, size, err := ParseSectionHeader(blob[len(blob)-TarHeaderSize:])
	if err != nil || name != SectionTOC || size != 4*TOCEntrySize {
		t.Fatalf("toc header %q %d %v", name, size, err)
	}
	var names []string
	for i := range 4 {
		var e TOCEntry
		off := len(blob) - TarHeaderSize - int(size) + i*TOCEntrySize
		_ = e.Unmarshal(blob[off:])
		names = append(names, e.Name)
	}
	if names[0] != SectionBlob || names[1] != SectionMeta || names[2] != SectionMetaHeader || names[3] != SectionDigest {
		t.Fatalf("toc names %v", names)
	}
	digest0 := blob[12954 : 12954+32]
	if hex.EncodeToString(digest0)[:8] != "f7e2735f" {
		t.Fatalf("digest array[0] = %x", digest0)
	}
	// Our tar header writer must reproduce upstream's bytes exactly.
	got := SectionHeader(SectionTOC, size)
	if string(got[:]) != string(blob[len(blob)-TarHeaderSize:]) {
		t.Fatalf("section header differs from upstream:\n%q\n%q", got[:300], blob[len(blob)-TarHeaderSize:][:300])
	}
}
