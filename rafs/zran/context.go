package zran

import (
	"encoding/binary"
	"fmt"
)

// ContextSize is the size of one on-disk inflate context (upstream's
// ZranInflateContext, packed, little-endian).
const ContextSize = 40

// WindowSize is the largest inflate dictionary a context carries.
const WindowSize = 32 << 10

// Context is one upstream zran inflate context: a deflate block boundary
// of the gzip stream from which the chunks assigned to it are inflated.
// In the blob.meta data the contexts follow the chunk-info array as a
// table of ContextSize-byte entries, then all dictionaries back to back.
type Context struct {
	// In is the stream offset of the first whole byte of the block; when
	// Bits > 0 the block starts in the byte before it, whose top Bits bits
	// (Byte >> (8-Bits)) are still to be consumed.
	In uint64
	// Out is the uncompressed-stream offset of the block's first byte.
	Out uint64
	// InLen and OutLen are the compressed bytes from In and the
	// uncompressed bytes from Out that cover the context's chunks.
	InLen, OutLen uint32
	Byte, Bits    uint8
	// Dict is the (up to 32 KiB) output preceding Out in its gzip member.
	Dict []byte
}

// InEnd is the stream offset just past the context's compressed bytes.
func (c *Context) InEnd() uint64 { return c.In + uint64(c.InLen) }

// EncodeContexts lays out contexts as upstream does: the table of
// ContextSize-byte entries, then the dictionaries in the same order
// (dict_offset counts from the start of the dictionary area).
func EncodeContexts(ctxs []Context) []byte {
	n := len(ctxs) * ContextSize
	for i := range ctxs {
		n += len(ctxs[i].Dict)
	}
	out := make([]byte, len(ctxs)*ContextSize, n)
	le := binary.LittleEndian
	var dictOff uint64
	for i := range ctxs {
		c := &ctxs[i]
		b := out[i*ContextSize:]
		le.PutUint64(b[0:], c.In)
		le.PutUint64(b[8:], c.Out)
		le.PutUint64(b[16:], dictOff)
		le.PutUint32(b[24:], c.InLen)
		le.PutUint32(b[28:], c.OutLen)
		le.PutUint32(b[32:], uint32(len(c.Dict)))
		b[36], b[37] = c.Byte, c.Bits
		dictOff += uint64(len(c.Dict))
	}
	for i := range ctxs {
		out = append(out, ctxs[i].Dict...)
	}
	return out
}

// DecodeContexts parses count contexts and their dictionaries from b (the
// zran area of the blob.meta data). Dictionaries alias b.
func DecodeContexts(b []byte, count int) ([]Context, error) {
	if count < 0 || count > maxContexts || uint64(count)*ContextSize > uint64(len(b)) {
		return nil, fmt.Errorf("%w: %d contexts do not fit %d bytes", ErrContext, count, len(b))
	}
	dicts := b[count*ContextSize:]
	le := binary.LittleEndian
	out := make([]Context, count)
	for i := range out {
		e := b[i*ContextSize:]
		c := Context{In: le.Uint64(e[0:]), Out: le.Uint64(e[8:]), InLen: le.Uint32(e[24:]), OutLen: le.Uint32(e[28:]),
			Byte: e[36], Bits: e[37]}
		off, size := le.Uint64(e[16:]), uint64(le.Uint32(e[32:]))
		switch {
		case size > WindowSize:
			return nil, fmt.Errorf("%w: context %d dictionary of %d bytes", ErrContext, i, size)
		case off > uint64(len(dicts)) || size > uint64(len(dicts))-off:
			return nil, fmt.Errorf("%w: context %d dictionary %d+%d outside %d bytes", ErrContext, i, off, size, len(dicts))
		case c.Bits > 7:
			return nil, fmt.Errorf("%w: context %d has %d pending bits", ErrContext, i, c.Bits)
		case c.Bits > 0 && c.In == 0:
			return nil, fmt.Errorf("%w: context %d has pending bits at offset 0", ErrContext, i)
		case c.In > 1<<48 || c.Out > 1<<48:
			return nil, fmt.Errorf("%w: context %d offsets %d/%d", ErrContext, i, c.In, c.Out)
		case c.OutLen > MaxContextOut || c.InLen > MaxContextIn:
			// Readers allocate and inflate whole contexts: keep them within
			// what nydusd itself accepts.
			return nil, fmt.Errorf("%w: context %d covers %d bytes from %d compressed (limits %d and %d)", ErrContext, i, c.OutLen, c.InLen, MaxContextOut, MaxContextIn)
		}
		c.Dict = dicts[off : off+size : off+size]
		out[i] = c
	}
	return out, nil
}
