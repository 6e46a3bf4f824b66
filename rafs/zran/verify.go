package zran

import (
	"fmt"
	"hash/crc32"
	"math"
)

// closeContext verifies the current context by re-inflating it from the
// kept stream bytes. A context whose reported block start does not
// reproduce its chunks is moved to the true start when one lies just
// before it, and otherwise merged into the previous context (whose
// inflation runs through it correctly).
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
	if g.contextMatches(&c, g.recs, true) && g.contextMatches(&c, g.recs, false) {
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
	if end-prev.In > math.MaxUint32 || c.Out+uint64(c.OutLen)-prev.Out > math.MaxUint32 {
		return fmt.Errorf("zran: merged context at %d grew past 4 GiB", prev.In)
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

// contextMatches inflates c from the kept stream bytes and compares the
// CRC of each recorded chunk (only the head of the first one when quick).
func (g *Generator) contextMatches(c *Context, recs []chunkRec, quick bool) bool {
	in, ok := g.s.consumed(int64(c.In), int64(c.InEnd()))
	if !ok {
		return false
	}
	n := int(c.OutLen)
	if quick {
		first := recs[0]
		n = int(first.ref.Offset) + min(int(first.ref.Size), headBytes)
		if cap(g.verifyBuf) < n {
			g.verifyBuf = make([]byte, n)
		}
		out := g.verifyBuf[:n]
		k, err := c.Inflate(in, out)
		return err == nil && k == n && crc32.ChecksumIEEE(out[first.ref.Offset:]) == first.head
	}
	if cap(g.verifyBuf) < n {
		g.verifyBuf = make([]byte, n)
	}
	out := g.verifyBuf[:n]
	if k, err := c.Inflate(in, out); err != nil || k != n {
		return false
	}
	for _, r := range recs {
		end := int(r.ref.Offset + r.ref.Size)
		if end > n {
			break
		}
		if crc32.ChecksumIEEE(out[r.ref.Offset:end]) != r.crc {
			return false
		}
	}
	return true
}

// relocate looks for the true start of c's block up to relocateBack bytes
// before the reported one (klauspost reports some block starts late).
func (g *Generator) relocate(c Context) (Context, bool) {
	base := int64(c.In)
	if c.Bits > 0 {
		base--
	}
	// The late reports seen are byte-aligned starts a few bytes back, so
	// byte-aligned candidates are tried first.
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
			if g.contextMatches(&t, g.recs, true) && g.contextMatches(&t, g.recs, false) {
				return t, true
			}
		}
	}
	return c, false
}
