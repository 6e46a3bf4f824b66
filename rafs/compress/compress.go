// Package compress implements the per-chunk compression algorithms of RAFS
// blobs: none, lz4 block format (no frame), zstd frames and gzip members.
//
// A Codec is safe for concurrent use; it pools its encoders and decoders.
package compress

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/gonydus/nydus/rafs/layout"
)

// ErrCorrupt is wrapped by decompression failures.
var ErrCorrupt = errors.New("compress: corrupt data")

// Codec compresses and decompresses independent chunks with one algorithm.
type Codec interface {
	// Algorithm names the codec.
	Algorithm() layout.Compressor
	// Compress appends the compressed form of src to dst[:0]. The result may
	// be larger than src; callers store src raw when it is not smaller.
	Compress(dst, src []byte) ([]byte, error)
	// Decompress decodes src, which must expand to exactly size bytes,
	// into dst[:0] (grown as needed). A size that src cannot expand to
	// (past the algorithm's largest ratio, see MaxExpansion) is refused
	// before anything is allocated, so a corrupt or hostile size cannot
	// make it allocate more than its input could produce.
	Decompress(dst, src []byte, size int) ([]byte, error)
}

// MaxExpansion is the most bytes n compressed bytes of alg can decode to:
// lz4 blocks expand at most 255:1 (one extra length byte per 255 literal
// or match bytes), deflate at most 1032:1, and a zstd frame at most one
// 128 KiB block per 3-byte RLE block (about 32768:1) plus one block.
func MaxExpansion(alg layout.Compressor, n int) int64 {
	switch alg {
	case layout.CompressNone:
		return int64(n)
	case layout.CompressLZ4:
		return int64(n)*255 + 16
	case layout.CompressGzip:
		return int64(n)*1032 + 1024
	case layout.CompressZstd:
		return int64(n)*(128<<10)/3 + 128<<10
	}
	return 0
}

// checkExpansion refuses a size that src cannot decode to.
func checkExpansion(alg layout.Compressor, src []byte, size int) error {
	if size < 0 || int64(size) > MaxExpansion(alg, len(src)) {
		return fmt.Errorf("%w: %d bytes of %s cannot expand to %d bytes", ErrCorrupt, len(src), alg, size)
	}
	return nil
}

// New returns the codec for an algorithm.
func New(alg layout.Compressor) (Codec, error) {
	switch alg {
	case layout.CompressNone:
		return noneCodec{}, nil
	case layout.CompressLZ4:
		return &lz4Codec{}, nil
	case layout.CompressZstd:
		return newZstd()
	case layout.CompressGzip:
		return gzipCodec{}, nil
	}
	return nil, fmt.Errorf("compress: unsupported algorithm %d", alg)
}

type noneCodec struct{}

func (noneCodec) Algorithm() layout.Compressor { return layout.CompressNone }
func (noneCodec) Compress(dst, src []byte) ([]byte, error) {
	return append(dst[:0], src...), nil
}
func (noneCodec) Decompress(dst, src []byte, size int) ([]byte, error) {
	if len(src) != size {
		return nil, fmt.Errorf("%w: stored chunk is %d bytes, want %d", ErrCorrupt, len(src), size)
	}
	return append(dst[:0], src...), nil
}

type lz4Codec struct{ pool sync.Pool }

func (*lz4Codec) Algorithm() layout.Compressor { return layout.CompressLZ4 }

func (c *lz4Codec) Compress(dst, src []byte) ([]byte, error) {
	comp, _ := c.pool.Get().(*lz4.Compressor)
	if comp == nil {
		comp = &lz4.Compressor{}
	}
	defer c.pool.Put(comp)
	bound := lz4.CompressBlockBound(len(src))
	dst = grow(dst, bound)
	n, err := comp.CompressBlock(src, dst)
	if err != nil {
		return nil, fmt.Errorf("compress: lz4: %w", err)
	}
	if n == 0 { // incompressible: lz4 reports 0; hand back something not smaller
		return append(dst[:0], src...), nil
	}
	return dst[:n], nil
}

func (*lz4Codec) Decompress(dst, src []byte, size int) ([]byte, error) {
	if size <= 0 {
		// The lz4 block decoder faults on an empty destination; an empty
		// chunk is only valid as an empty source.
		if len(src) == 0 || (len(src) == 1 && src[0] == 0) {
			return dst[:0], nil
		}
		return nil, fmt.Errorf("%w: lz4: %d bytes for an empty chunk", ErrCorrupt, len(src))
	}
	if err := checkExpansion(layout.CompressLZ4, src, size); err != nil {
		return nil, err
	}
	dst = grow(dst, size)
	n, err := lz4.UncompressBlock(src, dst)
	if err != nil {
		return nil, fmt.Errorf("%w: lz4: %v", ErrCorrupt, err) //nolint:errorlint // ErrCorrupt alone classifies: a codec's io.ErrUnexpectedEOF must not pass for a short read
	}
	if n != size {
		return nil, fmt.Errorf("%w: lz4 chunk expands to %d bytes, want %d", ErrCorrupt, n, size)
	}
	return dst[:n], nil
}

type zstdCodec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newZstd() (*zstdCodec, error) {
	// The Go encoder's "fastest" level (about zstd -1) compresses twice as
	// fast as its level-3 equivalent for 5% larger chunks; any level decodes
	// the same, so upstream readers are unaffected. Frames carry no
	// checksum, as upstream's (the chunk digest covers the data).
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, fmt.Errorf("compress: zstd encoder: %w", err)
	}
	// DecodeAll writes at most cap(dst) bytes: a frame that expands past
	// the size its caller expects fails instead of growing dst.
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return nil, fmt.Errorf("compress: zstd decoder: %w", err)
	}
	return &zstdCodec{enc: enc, dec: dec}, nil
}

func (*zstdCodec) Algorithm() layout.Compressor { return layout.CompressZstd }

func (c *zstdCodec) Compress(dst, src []byte) ([]byte, error) {
	return c.enc.EncodeAll(src, dst[:0]), nil
}

func (c *zstdCodec) Decompress(dst, src []byte, size int) ([]byte, error) {
	if err := checkExpansion(layout.CompressZstd, src, size); err != nil {
		return nil, err
	}
	var h zstd.Header
	if h.Decode(src) == nil && h.HasFCS && h.FrameContentSize != uint64(size) {
		return nil, fmt.Errorf("%w: zstd frame holds %d bytes, want %d", ErrCorrupt, h.FrameContentSize, size)
	}
	dst = grow(dst, size)
	out, err := c.dec.DecodeAll(src, dst[:0:size])
	if err != nil {
		return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err) //nolint:errorlint // ErrCorrupt alone classifies: a codec's io.ErrUnexpectedEOF must not pass for a short read
	}
	if len(out) != size {
		return nil, fmt.Errorf("%w: zstd chunk expands to %d bytes, want %d", ErrCorrupt, len(out), size)
	}
	return out, nil
}

type gzipCodec struct{}

func (gzipCodec) Algorithm() layout.Compressor { return layout.CompressGzip }

func (gzipCodec) Compress(dst, src []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst[:0])
	w := gzip.NewWriter(buf)
	if _, err := w.Write(src); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (gzipCodec) Decompress(dst, src []byte, size int) ([]byte, error) {
	if err := checkExpansion(layout.CompressGzip, src, size); err != nil {
		return nil, err
	}
	r, err := gzip.NewReader(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err) //nolint:errorlint // ErrCorrupt alone classifies: a codec's io.ErrUnexpectedEOF must not pass for a short read
	}
	dst = grow(dst, size+1)
	n, err := io.ReadFull(r, dst)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err) //nolint:errorlint // ErrCorrupt alone classifies: a codec's io.ErrUnexpectedEOF must not pass for a short read
	}
	if n != size {
		return nil, fmt.Errorf("%w: gzip chunk expands to %d+ bytes, want %d", ErrCorrupt, n, size)
	}
	return dst[:n], nil
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
