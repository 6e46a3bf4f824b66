package rafs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/gonydus/nydus/rafs/compress"
	"github.com/gonydus/nydus/rafs/digest"
	"github.com/gonydus/nydus/rafs/layout"
)

// ChunkSource returns the verified, uncompressed bytes of one chunk of a
// blob. Implementations must never return bytes whose digest was not
// checked.
type ChunkSource interface {
	ReadChunk(ctx context.Context, blob *layout.BlobEntry, c *layout.ChunkInfo) ([]byte, error)
}

// ErrDigestMismatch reports chunk data that does not match its digest.
var ErrDigestMismatch = errors.New("rafs: chunk digest mismatch")

// LocalBlobs is a ChunkSource over blob files on local disk: a directory
// of blobs named by blob id, and/or explicitly registered readers.
type LocalBlobs struct {
	dir string

	mu     sync.Mutex
	files  map[string]io.ReaderAt
	open   []*os.File
	codecs map[layout.Compressor]compress.Codec // one per algorithm: a zstd codec is costly to build
}

// NewLocalBlobs serves blobs from dir (may be empty) and from files, a map
// of blob id to reader (may be nil).
func NewLocalBlobs(dir string, files map[string]io.ReaderAt) *LocalBlobs {
	l := &LocalBlobs{dir: dir, files: map[string]io.ReaderAt{}}
	for id, r := range files {
		l.files[id] = r
	}
	return l
}

// Close closes the blob files LocalBlobs opened itself.
func (l *LocalBlobs) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, f := range l.open {
		errs = append(errs, f.Close())
	}
	l.open = nil
	return errors.Join(errs...)
}

func (l *LocalBlobs) blob(id string) (io.ReaderAt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.files[id]; ok {
		return r, nil
	}
	if l.dir == "" {
		return nil, fmt.Errorf("rafs: blob %s: no blob file given", id)
	}
	if filepath.Base(id) != id || id == "." || id == ".." {
		return nil, fmt.Errorf("rafs: blob id %q is not a file name", id)
	}
	f, err := os.Open(filepath.Join(l.dir, id))
	if err != nil {
		return nil, fmt.Errorf("rafs: blob %s: %w", id, err)
	}
	l.files[id] = f
	l.open = append(l.open, f)
	return f, nil
}

// ReadChunk implements ChunkSource: it reads the compressed range,
// decompresses it and verifies the digest (and CRC-32C when recorded).
func (l *LocalBlobs) ReadChunk(ctx context.Context, blob *layout.BlobEntry, c *layout.ChunkInfo) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := l.blob(blob.ID())
	if err != nil {
		return nil, err
	}
	raw := make([]byte, c.CompressedSize)
	if _, err := r.ReadAt(raw, int64(c.CompressedOffset)); err != nil {
		return nil, fmt.Errorf("rafs: blob %s: read chunk at %d (+%d): %w", blob.ID(), c.CompressedOffset, c.CompressedSize, err)
	}
	return decodeChunk(blob, c, raw, l.codec)
}

// codec returns the shared codec of alg.
func (l *LocalBlobs) codec(alg layout.Compressor) (compress.Codec, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.codecs[alg]; ok {
		return c, nil
	}
	c, err := compress.New(alg)
	if err != nil {
		return nil, err
	}
	if l.codecs == nil {
		l.codecs = map[layout.Compressor]compress.Codec{}
	}
	l.codecs[alg] = c
	return c, nil
}

// DecodeChunk decompresses the stored bytes of chunk c and verifies them.
func DecodeChunk(blob *layout.BlobEntry, c *layout.ChunkInfo, raw []byte) ([]byte, error) {
	return decodeChunk(blob, c, raw, compress.New)
}

func decodeChunk(blob *layout.BlobEntry, c *layout.ChunkInfo, raw []byte, codecOf func(layout.Compressor) (compress.Codec, error)) ([]byte, error) {
	if blob.Features&(layout.BlobZran|layout.BlobBatch|layout.BlobEncrypted) != 0 {
		return nil, fmt.Errorf("rafs: blob %s: features %#x need a storage backend that understands them", blob.ID(), uint32(blob.Features))
	}
	if c.UncompressedSize == 0 || c.UncompressedSize > layout.MaxChunkSize {
		return nil, formatErr("chunk of %d bytes", c.UncompressedSize)
	}
	if uint32(len(raw)) != c.CompressedSize {
		return nil, formatErr("chunk holds %d stored bytes, want %d", len(raw), c.CompressedSize)
	}
	data := raw
	if c.Flags&layout.ChunkCompressed != 0 {
		codec, err := codecOf(blob.Compressor)
		if err != nil {
			return nil, err
		}
		data, err = codec.Decompress(nil, raw, int(c.UncompressedSize))
		if err != nil {
			return nil, fmt.Errorf("rafs: blob %s chunk %d: %w", blob.ID(), c.Index, err)
		}
	} else if c.CompressedSize != c.UncompressedSize {
		return nil, formatErr("uncompressed chunk %d stores %d bytes for %d", c.Index, c.CompressedSize, c.UncompressedSize)
	}
	if got := digest.Sum(blob.Digester, data); got != c.Digest {
		return nil, fmt.Errorf("%w: blob %s chunk %d: got %x, want %x", ErrDigestMismatch, blob.ID(), c.Index, got[:8], c.Digest[:8])
	}
	if c.Flags&layout.ChunkHasCRC32 != 0 && digest.CRC32C(data) != c.CRC32 {
		return nil, fmt.Errorf("%w: blob %s chunk %d: CRC-32C mismatch", ErrDigestMismatch, blob.ID(), c.Index)
	}
	return data, nil
}
