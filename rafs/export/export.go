// Package export writes a RAFS v6 image as one raw EROFS block image: the
// bootstrap followed by each blob's uncompressed data at the block address
// its device slot maps it to. The Linux EROFS driver mounts the result
// directly (a flat-device image), which makes it an oracle for our builder.
package export

import (
	"context"
	"fmt"
	"io"

	"github.com/gonydus/nydus/rafs/layout"
)

// ChunkReader returns the verified uncompressed bytes of a chunk.
type ChunkReader interface {
	ReadChunk(ctx context.Context, blob *layout.BlobEntry, c *layout.ChunkInfo) ([]byte, error)
}

// Output is where the image goes: a file, in practice.
type Output interface {
	io.WriterAt
	Truncate(size int64) error
}

// Block writes the flat block image of the bootstrap boot (size bytes) to
// w. It returns the image size.
func Block(ctx context.Context, boot io.ReaderAt, size int64, chunks ChunkReader, w Output) (int64, error) {
	if size < layout.BlockSize || size%layout.BlockSize != 0 {
		return 0, fmt.Errorf("export: bootstrap size %d is not a positive multiple of 4096", size)
	}
	var head [layout.BlockSize]byte
	if _, err := boot.ReadAt(head[:], 0); err != nil {
		return 0, fmt.Errorf("export: read superblock: %w", err)
	}
	var sb layout.SuperBlock
	var ext layout.ExtSuperBlock
	_ = sb.Unmarshal(head[layout.SuperBlockOffset:])
	_ = ext.Unmarshal(head[layout.ExtSuperBlockOffset:])
	if err := sb.Validate(); err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	if err := ext.Validate(); err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	if sb.BlkSzBits != layout.BlockBits {
		return 0, fmt.Errorf("export: only 4 KiB block images are supported")
	}
	n := int(sb.ExtraDevices)
	if int(ext.BlobTableSize/layout.BlobEntrySize) != n {
		return 0, fmt.Errorf("export: %d devices but %d blobs", n, ext.BlobTableSize/layout.BlobEntrySize)
	}
	if ext.BlobTableOffset+uint64(ext.BlobTableSize) > uint64(size) ||
		ext.ChunkTableOffset+ext.ChunkTableSize > uint64(size) || layout.DeviceTableOffset+n*layout.DeviceSlotSize > int(size) {
		return 0, fmt.Errorf("export: tables lie outside the %d-byte bootstrap", size)
	}
	// Copy the bootstrap itself.
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		k := min(int64(len(buf)), size-off)
		if _, err := boot.ReadAt(buf[:k], off); err != nil {
			return 0, fmt.Errorf("export: read bootstrap: %w", err)
		}
		if _, err := w.WriteAt(buf[:k], off); err != nil {
			return 0, fmt.Errorf("export: write image: %w", err)
		}
		off += k
	}
	blobs := make([]layout.BlobEntry, n)
	mapped := make([]int64, n)
	end := size
	for i := range n {
		var d layout.DeviceSlot
		var e layout.BlobEntry
		if _, err := boot.ReadAt(buf[:layout.DeviceSlotSize], int64(layout.DeviceTableOffset+i*layout.DeviceSlotSize)); err != nil {
			return 0, err
		}
		_ = d.Unmarshal(buf)
		if _, err := boot.ReadAt(buf[:layout.BlobEntrySize], int64(ext.BlobTableOffset)+int64(i*layout.BlobEntrySize)); err != nil {
			return 0, err
		}
		_ = e.Unmarshal(buf)
		if err := d.Validate(); err != nil {
			return 0, fmt.Errorf("export: %w", err)
		}
		blobs[i] = e
		mapped[i] = int64(d.MappedBlkAddr) * layout.BlockSize
		if mapped[i] < size {
			return 0, fmt.Errorf("export: blob %d mapped at %d inside the bootstrap", i, mapped[i])
		}
		end = max(end, mapped[i]+int64(d.Blocks)*layout.BlockSize)
	}
	count := ext.ChunkTableSize / layout.ChunkInfoSize
	for i := range count {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if _, err := boot.ReadAt(buf[:layout.ChunkInfoSize], int64(ext.ChunkTableOffset+i*layout.ChunkInfoSize)); err != nil {
			return 0, err
		}
		var c layout.ChunkInfo
		_ = c.Unmarshal(buf)
		if int(c.BlobIndex) >= n {
			return 0, fmt.Errorf("export: chunk %d names blob %d of %d", i, c.BlobIndex, n)
		}
		data, err := chunks.ReadChunk(ctx, &blobs[c.BlobIndex], &c)
		if err != nil {
			return 0, fmt.Errorf("export: chunk %d: %w", i, err)
		}
		if c.UncompressedOffset+uint64(len(data)) > blobs[c.BlobIndex].UncompressedSize {
			return 0, fmt.Errorf("export: chunk %d overruns its blob", i)
		}
		if _, err := w.WriteAt(data, mapped[c.BlobIndex]+int64(c.UncompressedOffset)); err != nil {
			return 0, fmt.Errorf("export: write image: %w", err)
		}
	}
	// Make the image cover every mapped block, even trailing zeros.
	if err := w.Truncate(end); err != nil {
		return 0, fmt.Errorf("export: size image: %w", err)
	}
	return end, nil
}
