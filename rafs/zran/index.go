package zran

import (
	"bufio"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/klauspost/compress/flate"
)

// Checkpoint is a place inflation can resume from.
type Checkpoint struct {
	// In is the gzip-stream offset of the first whole byte of the block;
	// when Bits > 0 the block starts in the byte before it, whose top
	// Bits bits (Byte >> (8-Bits)) are still to be consumed.
	In   int64
	Bits uint8
	Byte uint8
	// Out is the offset of the block's first output byte.
	Out int64
	// Window is the (up to 32 KiB) output preceding Out in the member.
	Window []byte
	// Member is the index of the gzip member the checkpoint is in.
	Member int
	// crc is the CRC-32 of the output from Out to the next checkpoint or
	// the member's end, recorded while indexing (for Verify); head is the
	// CRC-32 of its first headLen bytes.
	crc, head uint32
	headLen   int
}

const headBytes = 4096

// member is one gzip member: where its deflate data starts and its output.
type member struct {
	dataIn int64 // first byte of the deflate data
	out    int64 // output offset of its first byte
	outLen int64
}

// Index holds the checkpoints of a gzip stream.
type Index struct {
	Checkpoints []Checkpoint
	members     []member
	// Size is the total uncompressed size.
	Size int64
	// CompressedSize is the size of the gzip stream.
	CompressedSize int64
}

// Default and limits of the checkpoint spacing, in compressed bytes.
const (
	DefaultSpan = 2 << 20
	minSpan     = 16 << 10
	// MaxCheckpoints bounds an index (upstream allows 2^24 contexts).
	MaxCheckpoints = 1 << 24
)

// BuildIndex inflates the gzip stream r once, verifying each member's CRC
// and size, and records a checkpoint at every member start and then at the
// first block boundary at least span compressed bytes after the previous
// one (a random read then inflates at most about span·ratio extra bytes).
// out, when not nil, receives the uncompressed stream (so a builder can
// parse the tar while indexing).
func BuildIndex(r io.Reader, span int64, out io.Writer) (*Index, error) {
	if span <= 0 {
		span = DefaultSpan
	}
	span = max(span, minSpan)
	cr := &countingReader{r: bufio.NewReaderSize(r, 1<<20)}
	ix := &Index{}
	buf := make([]byte, 256<<10)
	for m := 0; ; m++ {
		if err := cr.readHeader(); err != nil {
			if errors.Is(err, io.EOF) && m > 0 {
				break
			}
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: empty stream", ErrFormat)
			}
			return nil, err
		}
		mem := member{dataIn: cr.n, out: ix.Size}
		ix.Checkpoints = append(ix.Checkpoints, Checkpoint{In: cr.n, Out: ix.Size, Member: m})
		lastIn := cr.n
		var cbErr error
		dataIn, memOut := cr.n, ix.Size
		fr := flate.NewReaderOpts(cr, flate.WithEobCallback(func(cp flate.InflateCheckpoint) {
			abs := memOut + cp.UncompressedOffset
			if cp.Final || dataIn+cp.CompressedOffset-lastIn < span || cbErr != nil {
				return
			}
			if len(ix.Checkpoints) >= MaxCheckpoints {
				cbErr = fmt.Errorf("zran: more than %d checkpoints", MaxCheckpoints)
				return
			}
			c := Checkpoint{In: dataIn + cp.CompressedOffset, Out: abs, Member: m, Window: append([]byte(nil), cp.Window...)}
			if cp.BitOffset > 0 {
				b, ok := cr.byteAt(c.In)
				if !ok {
					return // the byte is gone (a stored block was copied past it): skip this boundary
				}
				c.In++
				c.Bits = 8 - cp.BitOffset
				c.Byte = b
			}
			ix.Checkpoints = append(ix.Checkpoints, c)
			lastIn = c.In
		}))
		crc := crc32.NewIEEE()
		var n int64
		seg := len(ix.Checkpoints) - 1 // checkpoint whose segment is being hashed
		var segCRC uint32
		for {
			k, err := fr.Read(buf)
			if k > 0 {
				crc.Write(buf[:k])
				// Route output into checkpoint segments.
				for chunk, pos := buf[:k], memOut+n; len(chunk) > 0; {
					cut := len(chunk)
					if seg+1 < len(ix.Checkpoints) {
						if next := ix.Checkpoints[seg+1].Out; next-pos < int64(cut) {
							cut = int(max(next-pos, 0))
						}
					}
					if h := &ix.Checkpoints[seg]; h.headLen < headBytes {
						k := min(cut, headBytes-h.headLen)
						h.head = crc32.Update(h.head, crc32.IEEETable, chunk[:k])
						h.headLen += k
					}
					segCRC = crc32.Update(segCRC, crc32.IEEETable, chunk[:cut])
					chunk, pos = chunk[cut:], pos+int64(cut)
					if seg+1 < len(ix.Checkpoints) && ix.Checkpoints[seg+1].Out <= pos {
						ix.Checkpoints[seg].crc = segCRC
						seg, segCRC = seg+1, 0
					}
				}
				n += int64(k)
				if out != nil {
					if _, werr := out.Write(buf[:k]); werr != nil {
						return nil, werr
					}
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%w: member %d: %v", ErrFormat, m, err) //nolint:errorlint // ErrFormat alone classifies: an inflater's io.EOF or io.ErrUnexpectedEOF must not pass for the end of the stream
			}
		}
		if cbErr != nil {
			return nil, cbErr
		}
		ix.Checkpoints[seg].crc = segCRC
		var tr [gzTrailerSize]byte
		for i := range tr {
			b, err := cr.ReadByte()
			if err != nil {
				return nil, fmt.Errorf("%w: member %d: truncated trailer", ErrFormat, m)
			}
			tr[i] = b
		}
		sum := uint32(tr[0]) | uint32(tr[1])<<8 | uint32(tr[2])<<16 | uint32(tr[3])<<24
		isize := uint32(tr[4]) | uint32(tr[5])<<8 | uint32(tr[6])<<16 | uint32(tr[7])<<24
		if sum != crc.Sum32() || isize != uint32(n) {
			return nil, fmt.Errorf("%w: member %d: CRC or size mismatch", ErrFormat, m)
		}
		mem.outLen = n
		ix.members = append(ix.members, mem)
		ix.Size += n
	}
	ix.CompressedSize = cr.n
	return ix, nil
}

// Verify re-inflates every checkpoint's segment from the checkpoint; a
// checkpoint whose output does not match what indexing saw is moved to the
// true block start when one is found just before it, and dropped
// otherwise (the previous checkpoint then covers its range). It returns
// how many were dropped. Member starts always verify.
func (ix *Index) Verify(ra io.ReaderAt) (int, error) {
	kept := ix.Checkpoints[:0]
	dropped := 0
	for i, cp := range ix.Checkpoints {
		end := ix.members[cp.Member].out + ix.members[cp.Member].outLen
		if i+1 < len(ix.Checkpoints) && ix.Checkpoints[i+1].Member == cp.Member {
			end = ix.Checkpoints[i+1].Out
		}
		ok := ix.segmentMatches(ra, cp, end)
		if !ok && cp.Window == nil && cp.Bits == 0 && ix.members[cp.Member].out == cp.Out {
			return dropped, fmt.Errorf("%w: member %d does not re-inflate as indexed", ErrFormat, cp.Member)
		}
		if !ok {
			// Some block boundaries are reported a few bits late (before
			// stored blocks); look for the true start just before.
			if fixed, found := ix.relocate(ra, cp, end); found {
				kept = append(kept, fixed)
				continue
			}
			// The previous checkpoint's stream continues through this
			// segment correctly: reads resume there instead.
			dropped++
			continue
		}
		kept = append(kept, cp)
	}
	ix.Checkpoints = kept
	return dropped, nil
}

// relocate tries the bit positions up to 64 bytes before cp for one whose
// output matches the segment's recorded head and then its whole CRC.
func (ix *Index) relocate(ra io.ReaderAt, cp Checkpoint, end int64) (Checkpoint, bool) {
	base := cp.In
	if cp.Bits > 0 {
		base--
	}
	for start := base; start >= base-64 && start > 0; start-- {
		for bo := uint8(0); bo < 8; bo++ {
			c := cp
			c.In, c.Bits, c.Byte = start, 0, 0
			if bo > 0 {
				var b [1]byte
				if _, err := ra.ReadAt(b[:], start); err != nil {
					return cp, false
				}
				c.In, c.Bits, c.Byte = start+1, 8-bo, b[0]
			}
			if c.In == cp.In && c.Bits == cp.Bits {
				continue
			}
			if ix.headMatches(ra, c) && ix.segmentMatches(ra, c, end) {
				return c, true
			}
		}
	}
	return cp, false
}

func (ix *Index) headMatches(ra io.ReaderAt, cp Checkpoint) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	fr, err := ix.resume(ra, cp)
	if err != nil {
		return false
	}
	defer fr.Close()
	buf := make([]byte, cp.headLen)
	if _, err := io.ReadFull(fr, buf); err != nil {
		return false
	}
	return crc32.ChecksumIEEE(buf) == cp.head
}

func (ix *Index) segmentMatches(ra io.ReaderAt, cp Checkpoint, end int64) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	fr, err := ix.resume(ra, cp)
	if err != nil {
		return false
	}
	defer fr.Close()
	h := crc32.NewIEEE()
	if _, err := io.CopyN(h, fr, end-cp.Out); err != nil {
		return false
	}
	return h.Sum32() == cp.crc
}

// EncodedSize is the size of the index in upstream's zran layout: a
// 40-byte context per checkpoint plus its dictionary.
func (ix *Index) EncodedSize() int64 {
	n := int64(0)
	for _, cp := range ix.Checkpoints {
		n += 40 + int64(len(cp.Window))
	}
	return n
}

// Checkpoint returns the checkpoint a read at off resumes from.
func (ix *Index) Checkpoint(off int64) (Checkpoint, bool) {
	i := sort.Search(len(ix.Checkpoints), func(i int) bool { return ix.Checkpoints[i].Out > off }) - 1
	if i < 0 {
		return Checkpoint{}, false
	}
	return ix.Checkpoints[i], true
}
