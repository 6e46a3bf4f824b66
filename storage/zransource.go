package storage

import (
	"context"
	"fmt"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/targzref"
)

// WithZranMetaLoader sets how the source finds the blob.meta of zran
// blobs. By default it is read from the blob's RAFS blob, which the
// bootstrap names by blob_meta_digest and which lives in the same backend
// as the gzip layer (as nydusd expects of zran images in a registry).
func WithZranMetaLoader(f func(ctx context.Context, entry *layout.BlobEntry) (*targzref.Meta, error)) SourceOption {
	return func(c *sourceConfig) error { c.zranMeta = f; return nil }
}

// zranMeta returns the blob.meta of zran blob entry.
func (s *Source) zranMeta(ctx context.Context, entry *layout.BlobEntry) (*targzref.Meta, error) {
	if s.cfg.zranMeta != nil {
		return s.cfg.zranMeta(ctx, entry)
	}
	id := targzref.MetaID(entry)
	if id == "" || entry.MetaSize == 0 {
		return nil, fmt.Errorf("storage: zran blob %s: the bootstrap does not name its RAFS blob (blob_meta_digest is empty, as in per-layer inline bootstraps)", entry.ID())
	}
	r, err := s.open(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("storage: open RAFS blob %s of zran blob %s: %w", id, entry.ID(), err)
	}
	m, err := targzref.ReadMeta(ctxReaderAt{ctx: ctx, r: r}, int64(entry.MetaSize), entry)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return m, nil
}

// ctxReaderAt adapts a BlobReader to io.ReaderAt under one context.
type ctxReaderAt struct {
	ctx context.Context
	r   BlobReader
}

func (c ctxReaderAt) ReadAt(p []byte, off int64) (int, error) { return c.r.ReadAt(c.ctx, p, off) }
