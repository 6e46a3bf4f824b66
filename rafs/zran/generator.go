package zran

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"

	"github.com/klauspost/compress/flate"
)

// ErrPosition reports chunk data that is not the bytes of the uncompressed
// stream at the position the generator expected (for example a consumer
// that reads ahead, or GNU sparse tar entries, whose file content is not
// a contiguous range of the tar).
var ErrPosition = errors.New("zran: chunk data is not a contiguous range of the stream")

const (
	// recordSize aligns the generator's reads to tar records, so a tar
	// reader behind a buffered reader never holds unread bytes across a
	// header (see Generator.Read).
	recordSize = 512
	// relocateBack is how far before a reported block start the true
	// start is looked for (klauspost reports some starts late).
	relocateBack = 64
)

// ChunkRef locates a chunk's uncompressed bytes in the contexts: Offset
// bytes into the output of context Context. In and InLen are the
// compressed bytes read while the chunk streamed past. A ChunkRef may
// change until Finish (a context that fails verification is merged into
// its predecessor).
type ChunkRef struct {
	Context uint32
	Offset  uint32
	Size    uint32
	In      uint64
	InLen   uint32
}

// boundary is a deflate block start seen while inflating.
type boundary struct {
	in     int64
	bits   uint8
	byte   uint8
	out    int64
	window []byte
}

// chunkRec remembers a chunk of the context being built, to verify it.
type chunkRec struct {
	ref  *ChunkRef
	head uint32 // CRC-32 of the first verifyBytes bytes (or fewer)
}

// Generator builds upstream's zran inflate contexts for the chunks of a
// gzip stream in one pass, as upstream's ZranGenerator: it is the
// io.Reader of the uncompressed stream, and a consumer (a tar parser)
// brackets the bytes of each chunk with BeginChunk and EndChunk. A chunk
// joins the current context or opens one at the last deflate block
// boundary before it, by upstream's rules with configurable limits (a new
// gzip member, enough compressed or uncompressed data since the context
// start, or a large gap; see Limits). Each context is verified when it is
// closed by re-inflating its first chunk from the bytes kept since its
// start; a context whose block start klauspost reported wrongly is moved
// to the true start or merged into the previous context. The input's sha256 and size come with it.
type Generator struct {
	s *streamReader
	// in buffers s for the inflater: a *bufio.Reader takes klauspost's
	// fast input path (not one interface call per byte).
	in  *bufio.Reader
	fr  io.ReadCloser
	err error
	eof bool

	member  int
	dataIn  int64 // first deflate byte of the current member
	memOut  int64
	memCRC  uint32
	memSize int64
	drift   int64 // bytes klauspost over-counts in this member (see onBlock)
	// driftFixes counts the reports that revealed more drift (tests).
	driftFixes int
	out        int64 // uncompressed bytes returned
	bounds     []boundary
	spare      [][]byte

	ctxs     []Context
	recs     []chunkRec // chunks of the current context
	blockIn  int64      // boundary the current context started at
	verified bool       // the current context's start is known good
	switched bool       // a member started since the last chunk call

	inChunk  bool
	chunkOut int64
	chunkIn  int64
	chunkLen int64
	chunkCRC uint32

	verifyBuf []byte
	relocated int
	merged    int

	chunkSize int64 // the image chunk size, for the uncompressed rule
	limits    Limits

	// newContext, when set (tests), may alter each context as it opens.
	newContext func(*Context)
}

// NewGenerator returns a generator reading the gzip stream r.
func NewGenerator(r io.Reader) *Generator {
	s := newStreamReader(r)
	return &Generator{s: s, in: bufio.NewReaderSize(s, inflateBufSize), limits: UpstreamLimits()}
}

// inflateBufSize is the inflater's input buffer.
const inflateBufSize = 64 << 10

// pos is the stream offset of the next byte the generator or its inflater
// consumes (the stream reader is ahead by what in holds).
func (g *Generator) pos() int64 { return g.s.n() - int64(g.in.Buffered()) }

// SetLimits sets the context spacing rules (UpstreamLimits unless set);
// call it before the first chunk.
func (g *Generator) SetLimits(l Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	g.limits = l
	return nil
}

// Read reads uncompressed bytes. Reads never cross a 512-byte tar record
// boundary of the output, so a tar reader behind a bufio.Reader holds no
// unread bytes once it has parsed a header: the generator's output
// position is then exactly where the entry's data starts.
func (g *Generator) Read(p []byte) (int, error) {
	for {
		if g.err != nil {
			return 0, g.err
		}
		if g.eof {
			return 0, io.EOF
		}
		if len(p) == 0 {
			return 0, nil
		}
		if g.fr == nil {
			if err := g.startMember(); err != nil {
				g.err = err
			}
			continue
		}
		q := p[:min(len(p), recordSize-int(g.out%recordSize))]
		k, err := g.fr.Read(q)
		if k > 0 {
			g.produced(q[:k])
		}
		switch {
		case errors.Is(err, io.EOF):
			if err := g.endMember(); err != nil {
				g.err = err
			}
		case err != nil:
			g.err = fmt.Errorf("%w: member %d: %v", ErrFormat, g.member, err) //nolint:errorlint // ErrFormat alone classifies: an inflater's io.EOF or io.ErrUnexpectedEOF must not pass for the end of the stream
		}
		if k > 0 {
			return k, nil
		}
	}
}

func (g *Generator) startMember() error {
	err := skipGzipHeader(g.in, g.pos())
	if errors.Is(err, io.EOF) {
		if g.member == 0 {
			return fmt.Errorf("%w: empty stream", ErrFormat)
		}
		if g.s.err != nil && !errors.Is(g.s.err, io.EOF) {
			return g.s.err
		}
		g.eof = true
		return nil
	}
	if err != nil {
		if g.s.err != nil && !errors.Is(g.s.err, io.EOF) {
			return fmt.Errorf("zran: read gzip stream: %w", g.s.err)
		}
		return err
	}
	if g.member > 0 {
		g.switched = true
	}
	g.dataIn, g.memOut, g.memCRC, g.memSize, g.drift = g.pos(), g.out, 0, 0, 0
	g.push(boundary{in: g.dataIn, out: g.out})
	g.fr = flate.NewReaderOpts(g.in, flate.WithEobCallback(g.onBlock))
	return nil
}

func (g *Generator) endMember() error {
	var tr [gzTrailerSize]byte
	for i := range tr {
		b, err := g.in.ReadByte()
		if err != nil {
			return fmt.Errorf("%w: member %d: truncated trailer", ErrFormat, g.member)
		}
		tr[i] = b
	}
	sum := uint32(tr[0]) | uint32(tr[1])<<8 | uint32(tr[2])<<16 | uint32(tr[3])<<24
	isize := uint32(tr[4]) | uint32(tr[5])<<8 | uint32(tr[6])<<16 | uint32(tr[7])<<24
	if sum != g.memCRC || isize != uint32(g.memSize) {
		return fmt.Errorf("%w: member %d: CRC or size mismatch", ErrFormat, g.member)
	}
	g.fr.Close()
	g.fr = nil
	g.member++
	return nil
}

// onBlock records a block boundary reported by the inflater.
//
// klauspost's decompressor counts the whole bytes left in its bit buffer
// twice when a stored block starts, so every later report of the member
// is late by the bytes miscounted so far (its drift). Right after a
// stored block the bit buffer is empty, so the true position is exactly
// the bytes the inflater has read from the stream: a report beyond that
// reveals the drift, which only grows, and is subtracted from every report
// after it. Verification (closeContext) still checks each context start.
func (g *Generator) onBlock(cp flate.InflateCheckpoint) {
	if cp.Final {
		return
	}
	pos := cp.CompressedOffset*8 + int64(cp.BitOffset) - g.drift*8
	if over := pos - (g.pos()-g.dataIn)*8; over > 0 {
		d := (over + 7) / 8
		g.drift += d
		g.driftFixes++
		pos -= d * 8
	}
	b := boundary{in: g.dataIn + pos/8, out: g.memOut + cp.UncompressedOffset}
	if bo := uint8(pos % 8); bo > 0 {
		raw, ok := g.s.consumed(b.in, b.in+1)
		if !ok {
			return
		}
		b.in++
		b.bits = 8 - bo
		b.byte = raw[0]
	}
	var w []byte
	if n := len(g.spare); n > 0 {
		w, g.spare = g.spare[n-1][:0], g.spare[:n-1]
	}
	b.window = append(w, cp.Window...)
	g.push(b)
}

func (g *Generator) push(b boundary) {
	g.bounds = append(g.bounds, b)
	g.advance()
}

// advance drops boundaries superseded by a later one at or before the
// output position, keeping bounds[0] the last boundary at or before it.
func (g *Generator) advance() {
	i := 0
	for i+1 < len(g.bounds) && g.bounds[i+1].out <= g.out {
		if g.bounds[i].window != nil {
			g.spare = append(g.spare, g.bounds[i].window)
		}
		i++
	}
	if i > 0 {
		g.bounds = append(g.bounds[:0], g.bounds[i:]...)
	}
	keep := g.pos() - relocateBack
	if len(g.ctxs) > 0 && !g.verified {
		keep = min(keep, int64(g.ctxs[len(g.ctxs)-1].In)-relocateBack-1)
	}
	if len(g.bounds) > 0 {
		keep = min(keep, g.bounds[0].in-relocateBack-1)
	}
	g.s.keep = keep
}

func (g *Generator) produced(b []byte) {
	g.memCRC = crc32.Update(g.memCRC, crc32.IEEETable, b)
	g.memSize += int64(len(b))
	if g.inChunk {
		lo := max(g.chunkOut-g.out, 0)
		hi := min(g.chunkOut+g.chunkLen-g.out, int64(len(b)))
		if lo < hi {
			g.chunkCRC = crc32.Update(g.chunkCRC, crc32.IEEETable, b[lo:hi])
		}
	}
	g.out += int64(len(b))
	g.advance()
}

// SetChunkSize sets the image chunk size: like upstream, a chunk opens a
// new context when the current one's output plus a whole chunk would
// reach the limit, whatever the chunk's own size.
func (g *Generator) SetChunkSize(n int64) { g.chunkSize = n }

// Offset is the uncompressed offset of the next byte Read returns.
func (g *Generator) Offset() int64 { return g.out }

// BeginChunk starts a chunk of size bytes at the current output offset.
func (g *Generator) BeginChunk(size int64) error {
	if g.inChunk {
		return errors.New("zran: BeginChunk inside a chunk")
	}
	if size <= 0 || size > math.MaxUint32 {
		return fmt.Errorf("zran: chunk of %d bytes", size)
	}
	if g.err != nil {
		return g.err
	}
	if g.fr == nil && !g.eof {
		// The chunk starts right at a member boundary: open the member
		// so the chunk's context can start there.
		if err := g.startMember(); err != nil {
			g.err = err
			return err
		}
	}
	if g.eof || len(g.bounds) == 0 {
		return fmt.Errorf("%w: chunk starts at the end of the stream", ErrPosition)
	}
	blk := g.bounds[0]
	newCtx := len(g.ctxs) == 0
	if !newCtx {
		c := &g.ctxs[len(g.ctxs)-1]
		comp := g.pos() - int64(c.In)
		uncomp := g.out - int64(c.Out)
		first := blk.in == g.blockIn
		l := &g.limits
		enough := !first && (comp >= l.MaxCompressed/2 || uncomp+max(size, g.chunkSize) >= l.MaxUncompressed)
		gap := !first && comp > 2*int64(c.InLen) && int64(c.InLen) > l.MinCompressed
		newCtx = g.switched || enough || gap
	}
	if newCtx {
		if err := g.closeContext(); err != nil {
			g.err = err
			return err
		}
		if len(g.ctxs) >= maxContexts {
			return fmt.Errorf("zran: more than %d contexts", maxContexts)
		}
		g.ctxs = append(g.ctxs, Context{In: uint64(blk.in), Out: uint64(blk.out), Byte: blk.byte, Bits: blk.bits,
			Dict: append([]byte(nil), blk.window...)})
		g.blockIn = blk.in
		g.verified = false
		if g.newContext != nil {
			g.newContext(&g.ctxs[len(g.ctxs)-1])
		}
	}
	g.inChunk, g.switched = true, false
	g.chunkOut, g.chunkIn, g.chunkLen, g.chunkCRC = g.out, g.pos(), size, 0
	return nil
}

// EndChunk ends the current chunk, whose bytes the consumer read as data;
// they must be the stream's bytes at the chunk's position.
func (g *Generator) EndChunk(data []byte) (*ChunkRef, error) {
	if !g.inChunk {
		return nil, errors.New("zran: EndChunk without BeginChunk")
	}
	g.inChunk, g.switched = false, false
	end := g.chunkOut + g.chunkLen
	if int64(len(data)) != g.chunkLen || g.out < end || crc32.ChecksumIEEE(data) != g.chunkCRC {
		return nil, fmt.Errorf("%w: %d bytes at offset %d", ErrPosition, g.chunkLen, g.chunkOut)
	}
	c := &g.ctxs[len(g.ctxs)-1]
	inEnd := g.pos()
	if uint64(inEnd)-c.In > math.MaxUint32 || uint64(end)-c.Out > MaxContextOut {
		// Only a single deflate block longer than the limit (a very long
		// run of repeated bytes) can take a context there.
		return nil, fmt.Errorf("zran: context at %d covers %d uncompressed bytes, more than upstream nydusd inflates (%d): use smaller context limits", c.In, uint64(end)-c.Out, MaxContextOut)
	}
	c.InLen = uint32(uint64(inEnd) - c.In)
	c.OutLen = uint32(uint64(end) - c.Out)
	in := g.chunkIn
	if in >= inEnd {
		in = int64(c.In) // produced from bytes already inflated ahead
	}
	ref := &ChunkRef{Context: uint32(len(g.ctxs) - 1), Offset: uint32(g.chunkOut - int64(c.Out)),
		Size: uint32(g.chunkLen), In: uint64(in), InLen: uint32(inEnd - in)}
	g.recs = append(g.recs, chunkRec{ref: ref, head: crc32.ChecksumIEEE(data[:min(len(data), verifyBytes)])})
	return ref, nil
}

// Finish reads the rest of the stream (which must end cleanly), verifies
// the last context and returns all contexts.
func (g *Generator) Finish() ([]Context, error) {
	if g.inChunk {
		return nil, errors.New("zran: Finish inside a chunk")
	}
	if _, err := io.Copy(io.Discard, g); err != nil {
		return nil, err
	}
	buffered := int64(g.in.Buffered())
	if rest, err := g.s.drain(); err != nil {
		return nil, fmt.Errorf("zran: read gzip stream: %w", err)
	} else if rest += buffered; rest > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last member", ErrFormat, rest)
	}
	if err := g.closeContext(); err != nil {
		return nil, err
	}
	// Upstream's inflater, reading a context that ends right where a
	// gzip member ends, goes on to skip the member's trailer and parse the
	// next header: give every context the bytes that may need, within the
	// stream (its input is otherwise exactly what the chunks needed).
	for i := range g.ctxs {
		c := &g.ctxs[i]
		ext := min(uint64(trailerSlack), uint64(g.s.size)-min(c.InEnd(), uint64(g.s.size)))
		if uint64(c.InLen)+ext <= math.MaxUint32 {
			c.InLen += uint32(ext)
		}
	}
	return g.ctxs, nil
}

// trailerSlack covers a gzip trailer and a plain next-member header.
const trailerSlack = 64

// Digest returns the sha256 of the gzip stream once Finish has read all
// of it (zero before), and Size its length.
func (g *Generator) Digest() [32]byte {
	var d [32]byte
	if g.s.r.err != nil {
		copy(d[:], g.s.r.digest())
	}
	return d
}

// Close stops the goroutine reading the gzip stream ahead; a generator
// abandoned before Finish should be closed.
func (g *Generator) Close() { g.s.r.close() }

// Size returns the number of gzip stream bytes read.
func (g *Generator) Size() int64 { return g.s.size }

// UncompressedSize returns the number of uncompressed bytes produced.
func (g *Generator) UncompressedSize() int64 { return g.out }

// Repairs reports how many contexts verification moved to the true block
// start and how many it merged into their predecessor.
func (g *Generator) Repairs() (relocated, merged int) { return g.relocated, g.merged }
