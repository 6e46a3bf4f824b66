package targzref

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/gonydus/nydus/rafs/digest"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/zran"
)

// ctxCache keeps the output of the last inflate context a Source read,
// so reading a context's chunks one after another (a whole-image check)
// inflates the context once instead of its start again for every chunk.
// The first read of a context fetches and inflates only up to its chunk;
// a second chunk of the same context beyond that reads the whole context,
// as upstream nydusd always does.
type ctxCache struct {
	mu  sync.Mutex
	ctx *zran.Context
	out []byte // the context's output from its start
}

// read returns chunk c of m from layer, the layer bytes it fetched, and
// the chunk's data (verified against its digest).
func (cc *ctxCache) read(m *Meta, layer io.ReaderAt, c *layout.ChunkInfo) ([]byte, uint64, error) {
	off, end, err := m.Span(c)
	if err != nil {
		return nil, 0, err
	}
	ctx, zoff, err := m.Locate(c.Index)
	if err != nil {
		return nil, 0, err
	}
	want := int(zoff) + int(c.UncompressedSize)
	cc.mu.Lock()
	out := cc.out
	if cc.ctx != ctx {
		out = nil
	} else if len(out) < want {
		// A later chunk of the context being read: take all of it.
		end, want = max(end, min(ctx.InEnd()+zran.ReadSlack, m.layerSize)), int(ctx.OutLen)
		out = nil
	}
	cc.mu.Unlock()
	var fetched uint64
	if out == nil {
		raw := make([]byte, end-off)
		if k, err := layer.ReadAt(raw, int64(off)); err != nil && !(errors.Is(err, io.EOF) && k == len(raw)) {
			return nil, 0, fmt.Errorf("targzref: blob %s: read layer %d+%d: %w", m.blobID, off, len(raw), err)
		}
		fetched = uint64(len(raw))
		out = make([]byte, want)
		if _, err := ctx.Inflate(raw, out); err != nil {
			return nil, fetched, fmt.Errorf("%w: blob %s chunk %d: %w", ErrDigestMismatch, m.blobID, c.Index, err)
		}
		cc.mu.Lock()
		cc.ctx, cc.out = ctx, out
		cc.mu.Unlock()
	}
	data := append([]byte(nil), out[zoff:int(zoff)+int(c.UncompressedSize)]...)
	if got := digest.Sum(m.digester, data); got != c.Digest {
		return nil, fetched, fmt.Errorf("%w: blob %s chunk %d: got %x, want %x", ErrDigestMismatch, m.blobID, c.Index, got[:8], c.Digest[:8])
	}
	return data, fetched, nil
}
