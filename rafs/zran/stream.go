package zran

import (
	"errors"
	"io"
)

// streamReader reads a gzip stream once (through an aheadReader, which
// hashes every byte on its own goroutine) and keeps the
// consumed bytes from a movable mark on, so the generator can read the
// partially consumed byte of a block boundary and re-inflate a context to
// verify it without a second pass over the input.
type streamReader struct {
	r    *aheadReader
	buf  []byte // stream bytes from base; buf[:pos] are consumed
	base int64
	pos  int
	keep int64 // bytes before this offset may be dropped
	err  error
	size int64 // bytes read from r
}

const streamReadSize = 256 << 10

func newStreamReader(r io.Reader) *streamReader {
	return &streamReader{r: newAheadReader(r), buf: make([]byte, 0, 4*streamReadSize)}
}

// n is the stream offset of the next byte to consume.
func (s *streamReader) n() int64 { return s.base + int64(s.pos) }

func (s *streamReader) fill() bool {
	if s.err != nil {
		return false
	}
	if cap(s.buf)-len(s.buf) < streamReadSize {
		if drop := min(s.keep-s.base, int64(s.pos)); drop > int64(len(s.buf))/2 {
			k := copy(s.buf, s.buf[drop:])
			s.buf = s.buf[:k]
			s.base += drop
			s.pos -= int(drop)
		}
		if cap(s.buf)-len(s.buf) < streamReadSize {
			nb := make([]byte, len(s.buf), 2*cap(s.buf)+streamReadSize)
			copy(nb, s.buf)
			s.buf = nb
		}
	}
	for {
		k, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
		if k > 0 {
			s.buf = s.buf[:len(s.buf)+k]
			s.size += int64(k)
		}
		if err != nil {
			s.err = err
		}
		if k > 0 {
			return true
		}
		if err != nil {
			return false
		}
	}
}

func (s *streamReader) ReadByte() (byte, error) {
	if s.pos == len(s.buf) && !s.fill() {
		return 0, s.err
	}
	s.pos++
	return s.buf[s.pos-1], nil
}

func (s *streamReader) Read(p []byte) (int, error) {
	if s.pos == len(s.buf) && !s.fill() {
		return 0, s.err
	}
	k := copy(p, s.buf[s.pos:])
	s.pos += k
	return k, nil
}

// consumed returns the consumed stream bytes [from, to), if still kept.
func (s *streamReader) consumed(from, to int64) ([]byte, bool) {
	if from < s.base || from > to || to > s.n() {
		return nil, false
	}
	return s.buf[from-s.base : to-s.base], true
}

// drain reads the rest of the input (so its digest and size are complete)
// and reports how many bytes followed the consumed ones.
func (s *streamReader) drain() (int64, error) {
	rest := int64(len(s.buf) - s.pos)
	s.keep = s.n()
	s.pos = len(s.buf)
	for s.fill() {
		rest += int64(len(s.buf) - s.pos)
		s.keep = s.n()
		s.pos = len(s.buf)
	}
	if s.err != nil && !errors.Is(s.err, io.EOF) {
		return rest, s.err
	}
	return rest, nil
}
