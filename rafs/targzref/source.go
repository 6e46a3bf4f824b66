package targzref

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
)

// Source is a rafs.ChunkSource for images whose blobs may be zran layers:
// chunks of zran blobs are read from the gzip layer through the blob's
// Meta; other blobs go to Base.
type Source struct {
	// Base serves blobs that are not zran layers (may be nil).
	Base rafs.ChunkSource
	// Layer opens the gzip layer of a zran blob.
	Layer func(entry *layout.BlobEntry) (io.ReaderAt, error)
	// Meta opens the RAFS blob holding a zran blob's blob.meta.
	Meta func(entry *layout.BlobEntry) (io.ReaderAt, int64, error)

	mu    sync.Mutex
	metas map[string]*Meta

	fetched atomic.Uint64
	cache   ctxCache
}

var _ rafs.ChunkSource = (*Source)(nil)

// Fetched returns the number of layer bytes read so far.
func (s *Source) Fetched() uint64 { return s.fetched.Load() }

// MetaID returns the id of the RAFS blob of a zran blob entry (empty when
// the bootstrap does not record it, as in inline per-layer bootstraps).
func MetaID(entry *layout.BlobEntry) string {
	if entry.MetaDigest == ([32]byte{}) {
		return ""
	}
	return hex.EncodeToString(entry.MetaDigest[:])
}

// ReadChunk implements rafs.ChunkSource.
func (s *Source) ReadChunk(ctx context.Context, blob *layout.BlobEntry, c *layout.ChunkInfo) ([]byte, error) {
	if blob.Features&layout.BlobZran == 0 {
		if s.Base == nil {
			return nil, fmt.Errorf("targzref: blob %s is not a zran blob and there is no other source", blob.ID())
		}
		return s.Base.ReadChunk(ctx, blob, c)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, err := s.meta(blob)
	if err != nil {
		return nil, err
	}
	layer, err := s.Layer(blob)
	if err != nil {
		return nil, fmt.Errorf("targzref: open layer %s: %w", blob.ID(), err)
	}
	data, fetched, err := s.cache.read(m, layer, c)
	s.fetched.Add(fetched)
	return data, err
}

func (s *Source) meta(blob *layout.BlobEntry) (*Meta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.metas[blob.ID()]; m != nil {
		return m, nil
	}
	if s.Meta == nil || s.Layer == nil {
		return nil, fmt.Errorf("targzref: no way to open zran blob %s", blob.ID())
	}
	ra, size, err := s.Meta(blob)
	if err != nil {
		return nil, fmt.Errorf("targzref: open RAFS blob of %s: %w", blob.ID(), err)
	}
	m, err := ReadMeta(ra, size, blob)
	if err != nil {
		return nil, err
	}
	if s.metas == nil {
		s.metas = map[string]*Meta{}
	}
	s.metas[blob.ID()] = m
	return m, nil
}
