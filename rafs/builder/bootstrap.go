package builder

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"math/bits"
	"path"
	"slices"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// blockSegAlignment aligns each blob in the flat block address space that
// `export --block` and kernel flat-device mounts use.
const blockSegAlignment = 0x80000

// BootstrapInfo describes a written bootstrap.
type BootstrapInfo struct {
	Size   int64
	Inodes uint64
	// Blobs is the blob table as written (unreferenced blobs dropped).
	Blobs []layout.BlobEntry
}

// WriteBootstrap lays out t as a RAFS v6 bootstrap and writes it to w.
func WriteBootstrap(w io.Writer, t *tree.Tree) (*BootstrapInfo, error) {
	b, info, err := EncodeBootstrap(t)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, fmt.Errorf("builder: write bootstrap: %w", err)
	}
	return info, nil
}

// inodeRec is one on-disk inode being laid out.
type inodeRec struct {
	ino     *tree.Inode
	nid     uint64
	num     uint32
	nlink   uint32
	parent  *inodeRec
	xattr   []byte
	icount  uint16
	dlayout uint16
	off     uint64 // absolute offset of the inode
	data    []byte // directory blocks or symlink target (unencoded dirs: nil until filled)
	dirents []dirSlot
	dirSize uint64
	blocks  uint64 // full blocks stored at blkaddr
	blkaddr uint32
	chunks  []layout.ChunkIndex
}

type dirSlot struct {
	name  string
	rec   *inodeRec
	block int
}

type bootstrapLayout struct {
	t        *tree.Tree
	recs     []*inodeRec
	byInode  map[*tree.Inode]*inodeRec
	blobs    []layout.BlobEntry
	blobMap  map[uint32]uint32 // tree blob index -> table index
	chunks   []*layout.ChunkInfo
	hasXattr bool
}

// EncodeBootstrap lays out t and returns the bootstrap bytes.
func EncodeBootstrap(t *tree.Tree) ([]byte, *BootstrapInfo, error) {
	if t.Root == nil || !t.Root.IsDir() {
		return nil, nil, fmt.Errorf("builder: tree has no root directory")
	}
	if !layout.ValidChunkSize(uint64(t.ChunkSize)) {
		return nil, nil, fmt.Errorf("builder: invalid chunk size %#x", t.ChunkSize)
	}
	l := &bootstrapLayout{t: t, byInode: map[*tree.Inode]*inodeRec{}, blobMap: map[uint32]uint32{}}
	if err := l.collect(); err != nil {
		return nil, nil, err
	}
	return l.encode()
}

// collect assigns inode records breadth-first and builds the blob table of
// referenced blobs in order of first reference.
func (l *bootstrapLayout) collect() error {
	root := &inodeRec{ino: l.t.Root}
	root.parent = root
	l.byInode[l.t.Root] = root
	l.recs = append(l.recs, root)
	for qi := 0; qi < len(l.recs); qi++ {
		r := l.recs[qi]
		if !r.ino.IsDir() {
			continue
		}
		for _, e := range r.ino.Children {
			if e.Name == "" || e.Name == "." || e.Name == ".." || len(e.Name) > 255 || bytes.ContainsAny([]byte(e.Name), "/\x00") {
				return fmt.Errorf("builder: invalid name %q in directory", e.Name)
			}
			c := l.byInode[e.Inode]
			if c == nil {
				c = &inodeRec{ino: e.Inode, parent: r}
				l.byInode[e.Inode] = c
				l.recs = append(l.recs, c)
			} else if e.Inode.IsDir() {
				return fmt.Errorf("builder: directory %q is linked twice", e.Name)
			}
			// A directory's link count is its own name, its "." and
			// each subdirectory's ".." (2 + subdirectories, as mkfs.erofs
			// and upstream write); the name in the parent is the first of
			// the two added below. Anything else counts its names.
			if e.Inode.IsDir() {
				r.nlink++
			} else {
				c.nlink++
			}
			r.dirents = append(r.dirents, dirSlot{name: e.Name, rec: c})
		}
	}
	if len(l.recs) > 1<<32-2 {
		return fmt.Errorf("builder: too many inodes (%d)", len(l.recs))
	}
	for i, r := range l.recs {
		r.num = uint32(i + 1)
		if r.ino.IsDir() {
			r.nlink += 2 // its name (the root's ".." names itself) and "."
		}
		if len(r.ino.Xattrs) > 0 {
			x, n, err := layout.EncodeXattrs(r.ino.Xattrs)
			if err != nil {
				return fmt.Errorf("builder: inode %d: %w", r.num, err)
			}
			r.xattr, r.icount = x, n
			l.hasXattr = true
		}
		if r.ino.IsReg() {
			if err := l.collectChunks(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *bootstrapLayout) collectChunks(r *inodeRec) error {
	cs := uint64(l.t.ChunkSize)
	want := (r.ino.Size + cs - 1) / cs
	if uint64(len(r.ino.Chunks)) != want {
		return fmt.Errorf("builder: inode %d of %d bytes has %d chunks, want %d", r.num, r.ino.Size, len(r.ino.Chunks), want)
	}
	r.chunks = make([]layout.ChunkIndex, len(r.ino.Chunks))
	for i, c := range r.ino.Chunks {
		if int(c.BlobIndex) >= len(l.t.Blobs) {
			return fmt.Errorf("builder: chunk refers to blob %d of %d", c.BlobIndex, len(l.t.Blobs))
		}
		idx, ok := l.blobMap[c.BlobIndex]
		if !ok {
			idx = uint32(len(l.blobs))
			if idx >= layout.MaxBlobs-1 {
				return fmt.Errorf("builder: image references more than %d blobs", layout.MaxBlobs-1)
			}
			l.blobMap[c.BlobIndex] = idx
			e := *l.t.Blobs[c.BlobIndex]
			e.BlobIndex = idx
			l.blobs = append(l.blobs, e)
		}
		if c.Index >= layout.MaxChunksPerBlob || c.UncompressedOffset%layout.BlockSize != 0 {
			return fmt.Errorf("builder: chunk %d of inode %d has index %d offset %d", i, r.num, c.Index, c.UncompressedOffset)
		}
		r.chunks[i] = layout.ChunkIndex{BlobIndex: uint8(idx), ChunkIndex: c.Index, BlkAddr: uint32(c.UncompressedOffset / layout.BlockSize)}
		l.chunks = append(l.chunks, c)
	}
	return nil
}

// planDir splits a directory's entries (with "." and "..") into blocks.
func planDir(r *inodeRec) {
	ents := append([]dirSlot{{name: ".", rec: r}, {name: "..", rec: r.parent}}, r.dirents...)
	sort.Slice(ents, func(i, j int) bool { return ents[i].name < ents[j].name })
	block, used := 0, 0
	for i := range ents {
		need := layout.DirentSize + len(ents[i].name)
		if used+need > layout.BlockSize {
			block++
			used = 0
		}
		ents[i].block = block
		used += need
	}
	r.dirents = ents
	r.dirSize = uint64(block)*layout.BlockSize + uint64(used)
}

func (l *bootstrapLayout) inlineFits(r *inodeRec, tail uint64) bool {
	return tail > 0 && layout.ExtendedInodeSize+uint64(len(r.xattr))+tail <= layout.BlockSize
}

// tablePlan is where encode puts the tables around the inodes: the blob
// table and prefetch table before the metadata area, the chunk table after
// the directory and symlink data blocks.
type tablePlan struct {
	blobTableOff, blobTableSize uint64
	prefetchOff, prefetchSize   uint64
	metaBlk                     uint64 // first block of the metadata area
	chunkTableOff               uint64
	chunkTableSize              uint64
	total                       uint64 // bootstrap size, block aligned
}

func (l *bootstrapLayout) encode() ([]byte, *BootstrapInfo, error) {
	prefetch, err := l.prefetchRecs()
	if err != nil {
		return nil, nil, err
	}
	p := l.planHead(len(prefetch))
	off, err := l.placeInodes(p.metaBlk * layout.BlockSize)
	if err != nil {
		return nil, nil, err
	}
	if off, err = l.placeDataBlocks(off); err != nil {
		return nil, nil, err
	}
	chunkTable := l.chunkTable()
	p.chunkTableOff = alignUp(off, layout.BlockSize)
	p.chunkTableSize = uint64(len(chunkTable) * layout.ChunkInfoSize)
	p.total = alignUp(p.chunkTableOff+p.chunkTableSize, layout.BlockSize)
	if p.total > layout.MaxMetadataSize {
		return nil, nil, fmt.Errorf("builder: bootstrap of %d bytes exceeds the 2 GiB limit", p.total)
	}
	buf := make([]byte, p.total)

	if err := l.writeSuperBlocks(buf, &p); err != nil {
		return nil, nil, err
	}
	if err := l.writeBlobTables(buf, &p); err != nil {
		return nil, nil, err
	}
	for i, r := range prefetch {
		le32(buf[p.prefetchOff+uint64(4*i):], uint32(r.nid))
	}
	// Inodes and their data.
	for _, r := range l.recs {
		if err := l.writeInode(buf, r); err != nil {
			return nil, nil, err
		}
	}
	for i, c := range chunkTable {
		c.Marshal(buf[p.chunkTableOff+uint64(i)*layout.ChunkInfoSize:])
	}
	return buf, &BootstrapInfo{Size: int64(p.total), Inodes: uint64(len(l.recs)), Blobs: l.blobs}, nil
}

// planHead places the blob table (after the device table, from block 1 on)
// and the prefetch table of nprefetch entries, and the metadata area after
// them.
func (l *bootstrapLayout) planHead(nprefetch int) tablePlan {
	nblobs := len(l.blobs)
	devEnd := uint64(layout.DeviceTableOffset + layout.DeviceSlotSize*nblobs)
	var p tablePlan
	p.blobTableOff = alignUp(max(devEnd, layout.BlockSize), layout.BlockSize)
	p.blobTableSize = uint64(layout.BlobEntrySize * nblobs)
	p.prefetchSize = uint64(4 * nprefetch)
	if p.prefetchSize > 0 {
		p.prefetchOff = p.blobTableOff + p.blobTableSize
	}
	p.metaBlk = alignUp(p.blobTableOff+p.blobTableSize+p.prefetchSize, layout.BlockSize) / layout.BlockSize
	return p
}

// placeInodes gives every record its offset and nid in the metadata area
// starting at metaBase (the root first, at RootNid) and returns the end of
// the last inode.
func (l *bootstrapLayout) placeInodes(metaBase uint64) (uint64, error) {
	off := metaBase + layout.BlockSize
	for _, r := range l.recs {
		size, err := l.sizeInode(r)
		if err != nil {
			return 0, err
		}
		// The inode core, xattrs and any inline tail must sit in one block.
		inBlock := uint64(layout.ExtendedInodeSize + len(r.xattr))
		if r.dlayout == layout.LayoutFlatInline {
			inBlock = size
		}
		if off%layout.BlockSize+inBlock > layout.BlockSize {
			off = alignUp(off, layout.BlockSize)
		}
		r.off = off
		r.nid = (off - metaBase) / layout.InodeSlotSize
		off = alignUp(off+size, layout.InodeSlotSize)
	}
	if l.recs[0].nid != layout.RootNid {
		return 0, fmt.Errorf("builder: root landed at nid %d", l.recs[0].nid)
	}
	return off, nil
}

// sizeInode chooses r's data layout, counts the full data blocks it needs
// outside the metadata area, and returns its size in the metadata area: the
// core, xattrs, and an inline tail or chunk indexes.
func (l *bootstrapLayout) sizeInode(r *inodeRec) (uint64, error) {
	core := uint64(layout.ExtendedInodeSize + len(r.xattr))
	switch {
	case r.ino.IsDir():
		planDir(r)
		tail := r.dirSize % layout.BlockSize
		r.blocks = r.dirSize / layout.BlockSize
		r.dlayout = layout.LayoutFlatPlain
		if l.inlineFits(r, tail) {
			r.dlayout = layout.LayoutFlatInline
			return core + tail, nil
		}
		if tail > 0 {
			r.blocks++
		}
		return core, nil
	case r.ino.IsSymlink():
		n := uint64(len(r.ino.Target))
		if n == 0 || n >= layout.BlockSize {
			return 0, fmt.Errorf("builder: symlink target of %d bytes", n)
		}
		r.data = []byte(r.ino.Target)
		r.dlayout = layout.LayoutFlatPlain
		if l.inlineFits(r, n) {
			r.dlayout = layout.LayoutFlatInline
			return core + n, nil
		}
		r.blocks = 1
		return core, nil
	case r.ino.IsReg():
		r.dlayout = layout.LayoutChunkBased
		return alignUp(core, layout.ChunkIndexSize) + uint64(len(r.chunks))*layout.ChunkIndexSize, nil
	default:
		r.dlayout = layout.LayoutFlatPlain
		return core, nil
	}
}

// placeDataBlocks gives the full data blocks of directories and symlinks
// their block addresses from off (block aligned) on and returns their end.
func (l *bootstrapLayout) placeDataBlocks(off uint64) (uint64, error) {
	off = alignUp(off, layout.BlockSize)
	for _, r := range l.recs {
		if r.blocks == 0 {
			continue
		}
		if off/layout.BlockSize > 0xffff_ffff {
			return 0, fmt.Errorf("builder: metadata exceeds the 32-bit block address space")
		}
		r.blkaddr = uint32(off / layout.BlockSize)
		off += r.blocks * layout.BlockSize
	}
	return off, nil
}

// writeSuperBlocks marshals the EROFS superblock and the RAFS v6 extended
// superblock into buf.
func (l *bootstrapLayout) writeSuperBlocks(buf []byte, p *tablePlan) error {
	nblobs := len(l.blobs)
	var blocks uint64
	for _, e := range l.blobs {
		blocks += e.UncompressedSize / layout.BlockSize
	}
	sb := layout.SuperBlock{
		Magic: layout.ErofsMagic, FeatureCompat: layout.FeatureCompatRafsV6, BlkSzBits: layout.BlockBits,
		RootNid: layout.RootNid, Inos: uint64(len(l.recs)), Blocks: uint32(blocks), MetaBlkAddr: uint32(p.metaBlk),
		FeatureIncompat: layout.FeatureIncompatRafsV6, ExtraDevices: uint16(nblobs), DevtSlotOff: layout.DeviceSlotOffset,
	}
	sb.Marshal(buf[layout.SuperBlockOffset:])
	flags := l.t.Flags &^ (layout.FlagHasXattr | layout.FlagInlinedChunkDigest)
	if l.hasXattr {
		flags |= layout.FlagHasXattr
	}
	if nblobs > 0 && !slices.ContainsFunc(l.blobs, func(e layout.BlobEntry) bool { return e.Features&layout.BlobInlinedChunkDigest == 0 }) {
		flags |= layout.FlagInlinedChunkDigest
	}
	if err := flags.Validate(); err != nil {
		return fmt.Errorf("builder: %w", err)
	}
	ext := layout.ExtSuperBlock{
		Flags: flags, BlobTableOffset: p.blobTableOff, BlobTableSize: uint32(p.blobTableSize), ChunkSize: l.t.ChunkSize,
		ChunkTableOffset: p.chunkTableOff, ChunkTableSize: p.chunkTableSize,
		PrefetchTableOffset: p.prefetchOff, PrefetchTableSize: uint32(p.prefetchSize),
	}
	ext.Marshal(buf[layout.ExtSuperBlockOffset:])
	return nil
}

// writeBlobTables marshals the device table and the blob table into buf;
// each blob is mapped after the bootstrap, segment aligned.
func (l *bootstrapLayout) writeBlobTables(buf []byte, p *tablePlan) error {
	mapped := alignUp(p.total, blockSegAlignment)
	for i := range l.blobs {
		e := &l.blobs[i]
		if e.ChunkSize != l.t.ChunkSize {
			return fmt.Errorf("builder: blob %s chunk size %#x differs from the image's %#x", e.ID(), e.ChunkSize, l.t.ChunkSize)
		}
		d := layout.DeviceSlot{Tag: e.BlobID, Blocks: uint32(e.UncompressedSize / layout.BlockSize), MappedBlkAddr: uint32(mapped / layout.BlockSize)}
		if d.Blocks == 0 {
			return fmt.Errorf("builder: blob %s holds no data", e.ID())
		}
		d.Marshal(buf[layout.DeviceTableOffset+i*layout.DeviceSlotSize:])
		e.Marshal(buf[p.blobTableOff+uint64(i)*layout.BlobEntrySize:])
		mapped = alignUp(mapped+e.UncompressedSize, blockSegAlignment)
	}
	return nil
}

func (l *bootstrapLayout) writeInode(buf []byte, r *inodeRec) error {
	ino := r.ino
	di := layout.Inode{
		XattrICount: r.icount, Mode: uint16(ino.Mode), Nlink: r.nlink, Ino: r.num,
		UID: ino.UID, GID: ino.GID, Mtime: ino.Mtime, MtimeNsec: ino.MtimeNsec,
	}
	di.SetFormat(true, r.dlayout)
	p := r.off + layout.ExtendedInodeSize + uint64(len(r.xattr))
	switch {
	case ino.IsDir():
		di.Size = r.dirSize
		data := encodeDir(r)
		full := r.blocks * layout.BlockSize
		if r.dlayout == layout.LayoutFlatInline {
			full = r.dirSize / layout.BlockSize * layout.BlockSize
			copy(buf[p:], data[full:])
		}
		copy(buf[uint64(r.blkaddr)*layout.BlockSize:], data[:min(full, uint64(len(data)))])
		if r.blocks > 0 {
			di.U = r.blkaddr
		}
	case ino.IsSymlink():
		di.Size = uint64(len(r.data))
		if r.dlayout == layout.LayoutFlatInline {
			copy(buf[p:], r.data)
		} else {
			di.U = r.blkaddr
			copy(buf[uint64(r.blkaddr)*layout.BlockSize:], r.data)
		}
	case ino.IsReg():
		di.Size = ino.Size
		di.U = layout.ChunkFormat(l.inodeChunkBits(r), layout.BlockBits)
		q := r.off + alignUp(layout.ExtendedInodeSize+uint64(len(r.xattr)), layout.ChunkIndexSize)
		for i := range r.chunks {
			r.chunks[i].Marshal(buf[q+uint64(i)*layout.ChunkIndexSize:])
		}
	default:
		switch ino.Mode & layout.ModeTypeMask {
		case layout.ModeChr, layout.ModeBlk:
			di.U = layout.EncodeRdev(unix.Major(ino.Rdev), unix.Minor(ino.Rdev))
		case layout.ModeFifo, layout.ModeSock:
		default:
			return fmt.Errorf("builder: inode %d has unsupported mode %#o", r.num, ino.Mode)
		}
	}
	di.Marshal(buf[r.off:])
	copy(buf[r.off+layout.ExtendedInodeSize:], r.xattr)
	return nil
}

// inodeChunkBits returns log2 of the chunk size the kernel sees for a file:
// the image chunk size, or one chunk covering the whole file when all its
// chunks are contiguous in one blob.
func (l *bootstrapLayout) inodeChunkBits(r *inodeRec) uint {
	base := uint(bits.TrailingZeros32(l.t.ChunkSize))
	if len(r.chunks) < 2 {
		return base
	}
	first := r.chunks[0]
	step := l.t.ChunkSize / layout.BlockSize
	for i, c := range r.chunks {
		if c.BlobIndex != first.BlobIndex || uint64(c.BlkAddr) != uint64(first.BlkAddr)+uint64(i)*uint64(step) {
			return base
		}
	}
	b := uint(bits.Len64(r.ino.Size - 1))
	if b-layout.BlockBits > layout.ChunkFormatBlkbitsMask {
		return base
	}
	return b
}

func encodeDir(r *inodeRec) []byte {
	out := make([]byte, alignUp(r.dirSize, layout.BlockSize))
	for start := 0; start < len(r.dirents); {
		blk := r.dirents[start].block
		end := start
		for end < len(r.dirents) && r.dirents[end].block == blk {
			end++
		}
		base := blk * layout.BlockSize
		nameOff := (end - start) * layout.DirentSize
		for i := start; i < end; i++ {
			d := layout.Dirent{Nid: r.dirents[i].rec.nid, NameOff: uint16(nameOff), FileType: layout.FileTypeOfMode(r.dirents[i].rec.ino.Mode)}
			d.Marshal(out[base+(i-start)*layout.DirentSize:])
			copy(out[base+nameOff:], r.dirents[i].name)
			nameOff += len(r.dirents[i].name)
		}
		start = end
	}
	return out[:r.dirSize]
}

// chunkTable returns unique chunk entries sorted by digest, then blob index.
func (l *bootstrapLayout) chunkTable() []layout.ChunkInfo {
	type key struct {
		d     [32]byte
		blob  uint32
		index uint32
	}
	seen := make(map[key]bool, len(l.chunks))
	out := make([]layout.ChunkInfo, 0, len(l.chunks))
	for _, c := range l.chunks {
		blob := l.blobMap[c.BlobIndex]
		k := key{c.Digest, blob, c.Index}
		if seen[k] {
			continue
		}
		seen[k] = true
		e := *c
		e.BlobIndex = blob
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b layout.ChunkInfo) int {
		if c := bytes.Compare(a.Digest[:], b.Digest[:]); c != 0 {
			return c
		}
		if c := cmp.Compare(a.BlobIndex, b.BlobIndex); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
	return out
}

// prefetchRecs resolves the tree's prefetch patterns to inode records,
// dropping paths under an earlier pattern and paths that do not exist.
func (l *bootstrapLayout) prefetchRecs() ([]*inodeRec, error) {
	var out []*inodeRec
	var kept []string
	for _, p := range l.t.Prefetch {
		clean := path.Clean("/" + p)
		covered := slices.ContainsFunc(kept, func(k string) bool {
			return k == "/" || clean == k || len(clean) > len(k) && clean[:len(k)] == k && clean[len(k)] == '/'
		})
		if covered {
			continue
		}
		ino := l.t.Lookup(clean)
		if ino == nil {
			continue
		}
		kept = append(kept, clean)
		out = append(out, l.byInode[ino])
	}
	return out, nil
}

func le32(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
