// Package export writes a RAFS v6 image as one raw EROFS block image: the
// bootstrap followed by each blob's uncompressed data at the block address
// its device slot maps it to. The Linux EROFS driver mounts the result
// directly (a flat-device image), which makes it an oracle for our builder.
package export

import (
	"context"
	"fmt"
	"io"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
)

// Output is where the image goes: a file, in practice.
type Output interface {
	io.WriterAt
	Truncate(size int64) error
}

// Block writes the flat block image of the opened bootstrap img to w,
// reading each chunk's data from chunks. It returns the image size.
func Block(ctx context.Context, img *rafs.Image, chunks rafs.ChunkSource, w Output) (int64, error) {
	size := img.Size()
	if img.SuperBlock().BlkSzBits != layout.BlockBits {
		return 0, fmt.Errorf("export: only 4 KiB block images are supported")
	}
	if size%layout.BlockSize != 0 {
		return 0, fmt.Errorf("export: bootstrap size %d is not a multiple of 4096", size)
	}
	// Copy the bootstrap itself.
	boot := img.Bootstrap()
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
	blobs, devices := img.Blobs(), img.Devices()
	mapped := make([]int64, len(blobs))
	end := size
	for i, d := range devices {
		mapped[i] = int64(d.MappedBlkAddr) * layout.BlockSize
		if mapped[i] < size {
			return 0, fmt.Errorf("export: blob %d mapped at %d inside the bootstrap", i, mapped[i])
		}
		end = max(end, mapped[i]+int64(d.Blocks)*layout.BlockSize)
	}
	perBlob, err := img.BlobChunks()
	if err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	for b, cs := range perBlob {
		for _, c := range cs {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			data, err := chunks.ReadChunk(ctx, blobs[b], c)
			if err != nil {
				return 0, fmt.Errorf("export: blob %d chunk %d: %w", b, c.Index, err)
			}
			if c.UncompressedOffset+uint64(len(data)) > blobs[b].UncompressedSize {
				return 0, fmt.Errorf("export: blob %d chunk %d overruns its blob", b, c.Index)
			}
			if _, err := w.WriteAt(data, mapped[b]+int64(c.UncompressedOffset)); err != nil {
				return 0, fmt.Errorf("export: write image: %w", err)
			}
		}
	}
	// Make the image cover every mapped block, even trailing zeros.
	if err := w.Truncate(end); err != nil {
		return 0, fmt.Errorf("export: size image: %w", err)
	}
	return end, nil
}
