package targzref

import (
	"errors"
	"fmt"
	"io"

	"github.com/gonydus/nydus/rafs/digest"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/zran"
)

// chunker is the source.FileWriter of a zran build: it cuts each file
// into chunks as the tar streams through the generator and has them
// digested (sha256, as upstream forces for OCI-ref) on the hasher's
// goroutine. The chunk infos it returns are completed by finish, which
// deduplicates chunks by digest in stream order and assigns each unique
// chunk the next 4 KiB-aligned offset of the blob's uncompressed address
// space (source.FileWriter allows completion once the writer finishes).
type chunker struct {
	g         *zran.Generator
	chunkSize int64
	buf       []byte
	h         *hasher

	pending []pendingChunk

	unique   []*layout.ChunkInfo
	refs     []*zran.ChunkRef // by chunk-info index
	byDigest map[digest.Digest]*layout.ChunkInfo
	uoff     uint64
}

// pendingChunk is a chunk whose digest may not be known yet.
type pendingChunk struct {
	ci  *layout.ChunkInfo
	ref *zran.ChunkRef
}

func newChunker(g *zran.Generator, chunkSize uint32) *chunker {
	g.SetChunkSize(int64(chunkSize))
	return &chunker{g: g, chunkSize: int64(chunkSize), buf: make([]byte, chunkSize), h: newHasher(int(chunkSize)),
		byDigest: map[digest.Digest]*layout.ChunkInfo{}}
}

// WriteFile implements source.FileWriter.
func (c *chunker) WriteFile(r io.Reader, size int64) ([]*layout.ChunkInfo, error) {
	if size < 0 {
		return nil, fmt.Errorf("targzref: negative file size %d", size)
	}
	var out []*layout.ChunkInfo
	for off := int64(0); off < size; {
		n := min(c.chunkSize, size-off)
		if err := c.g.BeginChunk(n); err != nil {
			return nil, fmt.Errorf("targzref: chunk at file offset %d: %w", off, err)
		}
		data := c.buf[:n]
		if _, err := io.ReadFull(r, data); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("targzref: read file data at %d of %d: %w", off, size, err)
		}
		ref, err := c.g.EndChunk(data)
		if err != nil {
			return nil, fmt.Errorf("targzref: chunk at file offset %d: %w", off, err)
		}
		if len(c.pending) >= layout.MaxChunksPerBlob*4 {
			return nil, fmt.Errorf("targzref: layer exceeds %d chunks", layout.MaxChunksPerBlob*4)
		}
		ci := &layout.ChunkInfo{Flags: layout.ChunkCompressed, UncompressedSize: uint32(n), FileOffset: uint64(off)}
		c.h.add(data, &ci.Digest)
		c.pending = append(c.pending, pendingChunk{ci: ci, ref: ref})
		out = append(out, ci)
		off += n
	}
	return out, nil
}

// finish waits for the digests and completes the chunk infos: a chunk
// whose digest was seen before becomes a copy of the first one (at its
// own file offset); the others are the blob's unique chunks, in stream
// order.
func (c *chunker) finish() error {
	c.h.wait()
	for _, p := range c.pending {
		ci := p.ci
		if prev := c.byDigest[ci.Digest]; prev != nil {
			off := ci.FileOffset
			*ci = *prev
			ci.FileOffset = off
			continue
		}
		if len(c.unique) >= layout.MaxChunksPerBlob-1 {
			return fmt.Errorf("targzref: layer exceeds %d chunks", layout.MaxChunksPerBlob-1)
		}
		if p.ref.InLen >= 1<<24 {
			return fmt.Errorf("targzref: chunk at file offset %d spans %d compressed bytes (limit 16 MiB): use a smaller --chunk-size", ci.FileOffset, p.ref.InLen)
		}
		ci.CompressedOffset, ci.CompressedSize = p.ref.In, p.ref.InLen
		ci.UncompressedOffset, ci.Index = c.uoff, uint32(len(c.unique))
		c.uoff += uint64(ci.UncompressedSize+layout.BlockSize-1) &^ (layout.BlockSize - 1)
		c.unique = append(c.unique, ci)
		c.refs = append(c.refs, p.ref)
		c.byDigest[ci.Digest] = ci
	}
	c.pending = nil
	return nil
}

// close stops the hasher (on every path out of Build).
func (c *chunker) close() { c.h.wait() }

// blobChunks returns the ci-array entries and the contexts they use, once
// the generator has finished (contexts are final). Contexts only
// duplicate chunks used are dropped: nydusd refuses more contexts than
// chunks.
func (c *chunker) blobChunks(ctxs []zran.Context) ([]layout.BlobChunk, []zran.Context) {
	remap := make([]int, len(ctxs))
	for i := range remap {
		remap[i] = -1
	}
	var used []zran.Context
	out := make([]layout.BlobChunk, len(c.unique))
	for i, ci := range c.unique {
		r := c.refs[i]
		if remap[r.Context] < 0 {
			remap[r.Context] = len(used)
			used = append(used, ctxs[r.Context])
		}
		out[i] = layout.BlobChunk{UncompressedOffset: ci.UncompressedOffset, UncompressedSize: ci.UncompressedSize,
			CompressedOffset: ci.CompressedOffset, CompressedSize: ci.CompressedSize, Compressed: true,
			Flags: layout.CIv2Compressed | layout.CIv2Zran, Data: uint64(remap[r.Context])<<32 | uint64(r.Offset)}
	}
	return out, used
}

func (c *chunker) digests() []byte {
	out := make([]byte, 0, 32*len(c.unique))
	for _, ci := range c.unique {
		out = append(out, ci.Digest[:]...)
	}
	return out
}
