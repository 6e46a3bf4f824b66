package zran

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"
)

// ErrContext reports an inflate context that is malformed or does not
// inflate its compressed bytes.
var ErrContext = errors.New("zran: invalid inflate context")

// ReadSlack is how many bytes past the compressed end recorded by zlib
// (upstream's in_len and chunk sizes count exactly what zlib consumed)
// a reader should give Inflate: klauspost's inflater looks up to a few
// bytes further ahead before it emits the last symbols.
const ReadSlack = 16

// Inflate fills out with the first len(out) uncompressed bytes of context
// c, given in, the gzip stream's bytes from c.In on (at most c.InLen are
// needed; fewer fail). A context may run across gzip members: at a
// member's end the trailer and the next header are skipped, as upstream
// nydusd does. It returns the number of bytes inflated, which is len(out)
// on success.
func (c *Context) Inflate(in, out []byte) (int, error) { return c.InflateAt(in, 0, out) }

// InflateAt is Inflate for the output bytes from skip on: the first skip
// bytes are inflated into a small scratch buffer and dropped. It returns
// the number of bytes inflated (skip+len(out) on success).
func (c *Context) InflateAt(in []byte, skip int, out []byte) (n int, err error) {
	if skip < 0 || uint64(skip)+uint64(len(out)) > uint64(c.OutLen) {
		return 0, fmt.Errorf("%w: %d+%d bytes wanted from a context of %d", ErrContext, skip, len(out), c.OutLen)
	}
	if len(c.Dict) > WindowSize || c.Bits > 7 {
		return 0, fmt.Errorf("%w: dictionary %d bytes, %d pending bits", ErrContext, len(c.Dict), c.Bits)
	}
	defer func() {
		// The inflater must never take the process down on hostile input.
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("%w: inflater failed: %v", ErrContext, r)
		}
	}()
	src := in
	cp := flate.InflateCheckpoint{Window: c.Dict}
	if c.Bits > 0 {
		src = make([]byte, 1+len(in))
		src[0] = c.Byte
		copy(src[1:], in)
		cp.BitOffset = 8 - c.Bits
	}
	// A *bytes.Reader takes klauspost's fastest input path and is an
	// io.ByteReader, so the inflater consumes exactly the bytes it needs
	// and a trailer and the next member's header can be read after it.
	r := bytes.NewReader(src)
	fr := flate.NewReaderOpts(r, flate.WithResumeFrom(cp))
	var scratch []byte
	if skip > 0 {
		scratch = make([]byte, min(skip, 64<<10))
	}
	want := skip + len(out)
	for n < want {
		dst := scratch[:min(len(scratch), skip-min(n, skip))]
		if n >= skip {
			dst = out[n-skip:]
		}
		k, rerr := fr.Read(dst)
		n += k
		if n == want {
			break
		}
		switch {
		case errors.Is(rerr, io.EOF):
			// End of a gzip member inside the context: skip its trailer
			// and the next member's header, and inflate on.
			if r.Len() < gzTrailerSize {
				return n, fmt.Errorf("%w: member ends %d bytes into the context without a trailer", ErrFormat, n)
			}
			r.Seek(gzTrailerSize, io.SeekCurrent)
			if herr := skipGzipHeader(r, int64(c.In)+r.Size()-int64(r.Len())); herr != nil {
				if errors.Is(herr, io.EOF) {
					herr = fmt.Errorf("%w: stream ends %d bytes into the context", ErrFormat, n)
				}
				return n, herr
			}
			fr = flate.NewReaderOpts(r)
		case rerr != nil:
			return n, fmt.Errorf("%w: inflating context at %d: %v", ErrFormat, c.In, rerr) //nolint:errorlint // ErrFormat alone classifies: an inflater's io.EOF or io.ErrUnexpectedEOF must not pass for the end of the stream
		case k == 0:
			return n, fmt.Errorf("%w: inflater made no progress at %d", ErrFormat, c.In)
		}
	}
	return n, nil
}
