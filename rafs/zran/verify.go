package zran

import (
	"fmt"
	"hash/crc32"
	"math"
)

// verifyBytes is how much of a context's first chunk verification
// re-inflates and compares.
const verifyBytes = 64 << 10

// closeContext verifies the current context by re-inflating the start of
// its first chunk (up to verifyBytes) from the kept stream bytes. A
// context whose reported block start does not reproduce those bytes is
// moved to the true start when one lies just before it, and otherwise
// merged into the previous context (whose inflation runs through it
// correctly).
//
// The start of the first chunk is enough: inflating from the true block
// start with the true window is the sequential decoder's own computation,
// so once a start reproduces the first symbols and kilobytes after them,
// the rest of the context follows; a wrong start decodes garbage or fails
// within its first symbols. Every chunk is checked against its sha256 when
// it is read, so a wrong context could never be served silently.
// Re-inflation costs the bytes before the chunk in its block plus at most
// verifyBytes, not the whole context.
func (g *Generator) closeContext() error {
	if len(g.ctxs) == 0 || len(g.recs) == 0 {
		return nil
	}
	defer func() { g.recs = g.recs[:0] }()
	if g.verified {
		// A context merged into earlier: inflation from its verified
		// start reproduces everything after it.
		return nil
	}
	i := len(g.ctxs) - 1
	c := g.ctxs[i]
	if g.contextMatches(&c, g.recs[0]) {
		return nil
	}
	if fixed, ok := g.relocate(c); ok {
		g.ctxs[i] = fixed
		g.relocated++
		return nil
	}
	if i == 0 {
		return fmt.Errorf("%w: the stream does not re-inflate from its first block", ErrFormat)
	}
	prev := &g.ctxs[i-1]
	shift := c.Out - prev.Out
	end := max(prev.InEnd(), c.InEnd())
	if end-prev.In > math.MaxUint32 || c.Out+uint64(c.OutLen)-prev.Out > MaxContextOut {
		return fmt.Errorf("zran: merged context at %d grew past %d uncompressed bytes", prev.In, MaxContextOut)
	}
	for _, r := range g.recs {
		if uint64(r.ref.Offset)+shift > math.MaxUint32 {
			return fmt.Errorf("zran: merged context at %d grew past 4 GiB", prev.In)
		}
		r.ref.Context = uint32(i - 1)
		r.ref.Offset += uint32(shift)
	}
	prev.InLen = uint32(end - prev.In)
	prev.OutLen = uint32(c.Out + uint64(c.OutLen) - prev.Out)
	g.ctxs = g.ctxs[:i]
	g.blockIn = int64(prev.In)
	g.verified = true
	g.merged++
	return nil
}

// contextMatches inflates c from the kept stream bytes up to verifyBytes
// into chunk r and compares their CRC-32.
func (g *Generator) contextMatches(c *Context, r chunkRec) bool {
	in, ok := g.s.consumed(int64(c.In), int64(c.InEnd()))
	if !ok {
		return false
	}
	n := int(r.ref.Offset) + min(int(r.ref.Size), verifyBytes)
	if n > int(c.OutLen) {
		return false
	}
	if cap(g.verifyBuf) < n {
		g.verifyBuf = make([]byte, n)
	}
	out := g.verifyBuf[:n]
	k, err := c.Inflate(in, out)
	return err == nil && k == n && crc32.ChecksumIEEE(out[r.ref.Offset:]) == r.head
}

// relocate looks for the true start of c's block up to relocateBack bytes
// before the reported one (klauspost reports some block starts late).
func (g *Generator) relocate(c Context) (Context, bool) {
	base := int64(c.In)
	if c.Bits > 0 {
		base--
	}
	// The late reports seen are exactly one byte late (klauspost, after
	// some blocks), so that candidate is tried first, then byte-aligned
	// starts a few bytes back, then every bit position.
	if t, ok := g.relocateAt(c, int64(c.In)*8-int64(c.Bits)-8); ok {
		return t, true
	}
	for _, bos := range [][]uint8{{0}, {1, 2, 3, 4, 5, 6, 7}} {
		if t, ok := g.relocateTry(c, base, bos); ok {
			return t, true
		}
	}
	return c, false
}

func (g *Generator) relocateTry(c Context, base int64, bos []uint8) (Context, bool) {
	for start := base; start >= base-relocateBack && start > 0; start-- {
		for _, bo := range bos {
			t := c
			t.In, t.Bits, t.Byte = uint64(start), 0, 0
			if bo > 0 {
				b, ok := g.s.consumed(start, start+1)
				if !ok {
					return c, false
				}
				t.In, t.Bits, t.Byte = uint64(start+1), 8-bo, b[0]
			}
			if t.In == c.In && t.Bits == c.Bits {
				continue
			}
			if t.In > c.InEnd() {
				continue
			}
			t.InLen = uint32(c.InEnd() - t.In)
			if g.contextMatches(&t, g.recs[0]) {
				return t, true
			}
		}
	}
	return c, false
}

// relocateAt tries the block start at stream bit position pos.
func (g *Generator) relocateAt(c Context, pos int64) (Context, bool) {
	if pos <= 0 {
		return c, false
	}
	t := c
	t.In, t.Bits, t.Byte = uint64(pos/8), 0, 0
	if bo := pos % 8; bo > 0 {
		b, ok := g.s.consumed(pos/8, pos/8+1)
		if !ok {
			return c, false
		}
		t.In, t.Bits, t.Byte = uint64(pos/8+1), uint8(8-bo), b[0]
	}
	if t.In > c.InEnd() {
		return c, false
	}
	t.InLen = uint32(c.InEnd() - t.In)
	if g.contextMatches(&t, g.recs[0]) {
		return t, true
	}
	return c, false
}
