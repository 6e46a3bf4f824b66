package compress

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Stream formats NewStreamReader recognises.
const (
	StreamPlain = "plain"
	StreamGzip  = "gzip"
	StreamZstd  = "zstd"
)

// MaxStreamWindow bounds the window a zstd stream may ask for (zstd
// --long=27, the most `zstd --long` uses by default): a stream asking for
// more is refused instead of making the reader allocate it.
const MaxStreamWindow = 128 << 20

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// NewStreamReader returns r decompressed according to its first bytes
// (gzip, zstd, or neither: plain), and the format it found. Closing the
// result releases the decoder; it does not close r. A layer tar reaches
// the builder, convert's flattening and its bootstrap-layer reader
// through this one function.
func NewStreamReader(r io.Reader) (io.ReadCloser, string, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, "", fmt.Errorf("compress: read stream: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, "", fmt.Errorf("compress: gzip: %w", err)
		}
		return zr, StreamGzip, nil
	case bytes.Equal(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxMemory(1<<30), zstd.WithDecoderMaxWindow(MaxStreamWindow))
		if err != nil {
			return nil, "", fmt.Errorf("compress: zstd: %w", err)
		}
		return zstdStream{zr}, StreamZstd, nil
	}
	return io.NopCloser(br), StreamPlain, nil
}

// zstdStream closes its decoder without an error result.
type zstdStream struct{ *zstd.Decoder }

func (z zstdStream) Close() error {
	z.Decoder.Close()
	return nil
}
