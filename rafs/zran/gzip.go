package zran

import (
	"errors"
	"fmt"
	"io"
)

// ErrFormat reports a stream that is not gzip or is corrupt.
var ErrFormat = errors.New("zran: invalid gzip stream")

const (
	gzFlagHCRC    = 1 << 1
	gzFlagExtra   = 1 << 2
	gzFlagName    = 1 << 3
	gzFlagComment = 1 << 4
	gzTrailerSize = 8
	maxHeaderLen  = 1 << 20 // names, comments and extra fields
)

// skipGzipHeader consumes one gzip member header from r (which starts at
// stream offset start, for messages); it returns io.EOF at a clean end of
// stream.
func skipGzipHeader(r io.ByteReader, start int64) error {
	var h [10]byte
	for i := range h {
		b, err := r.ReadByte()
		if err != nil {
			if i == 0 && errors.Is(err, io.EOF) {
				return io.EOF
			}
			return fmt.Errorf("%w: truncated member header at %d", ErrFormat, start)
		}
		h[i] = b
	}
	if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 {
		return fmt.Errorf("%w: no gzip member header at offset %d", ErrFormat, start)
	}
	flg := h[3]
	if flg&0xe0 != 0 {
		return fmt.Errorf("%w: reserved header flags %#x at offset %d", ErrFormat, flg, start)
	}
	skip := func(n int) error {
		for range n {
			if _, err := r.ReadByte(); err != nil {
				return err
			}
		}
		return nil
	}
	if flg&gzFlagExtra != 0 {
		lo, err1 := r.ReadByte()
		hi, err2 := r.ReadByte()
		if err1 != nil || err2 != nil {
			return fmt.Errorf("%w: truncated extra field", ErrFormat)
		}
		if err := skip(int(lo) | int(hi)<<8); err != nil {
			return fmt.Errorf("%w: truncated extra field", ErrFormat)
		}
	}
	for _, f := range []byte{gzFlagName, gzFlagComment} {
		if flg&f == 0 {
			continue
		}
		for i := 0; ; i++ {
			b, err := r.ReadByte()
			if err != nil || i > maxHeaderLen {
				return fmt.Errorf("%w: unterminated header string", ErrFormat)
			}
			if b == 0 {
				break
			}
		}
	}
	if flg&gzFlagHCRC != 0 {
		if err := skip(2); err != nil {
			return fmt.Errorf("%w: truncated header CRC", ErrFormat)
		}
	}
	return nil
}
