package targzref

import (
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// compressMeta compresses the blob.meta data (chunk infos, zran contexts
// and their dictionaries) as one zstd frame at the encoder's best level:
// the data is small next to the layer and read once per mount, and the
// dictionaries are most of it, so a denser frame is most of the index
// size saved. Any zstd decoder (upstream's included) reads it.
func compressMeta(data []byte) ([]byte, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderCRC(false), zstd.WithWindowSize(windowFor(len(data))))
	if err != nil {
		return nil, fmt.Errorf("targzref: zstd encoder: %w", err)
	}
	defer enc.Close()
	return enc.EncodeAll(data, make([]byte, 0, len(data)/2)), nil
}

// windowFor is the smallest zstd window covering n bytes, within the
// encoder's bounds.
func windowFor(n int) int {
	w := zstd.MinWindowSize
	for w < n && w < 8<<20 {
		w <<= 1
	}
	return w
}
