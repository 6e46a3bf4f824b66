package source_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/source"
)

// discardWriter consumes file data like a blob writer would, without
// storing it, so the benchmark measures tar parsing and tree building.
type discardWriter struct{}

func (discardWriter) WriteFile(r io.Reader, size int64) ([]*layout.ChunkInfo, error) {
	n, err := io.Copy(io.Discard, io.LimitReader(r, size))
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	return nil, err
}

// BenchmarkFromTar reports tar parsing throughput (MB/s of tar input) on
// 2,000 files of 1–64 KiB.
func BenchmarkFromTar(b *testing.B) {
	data := bytes.Repeat([]byte("nydus "), 64<<10/6)
	var files []tartest.Entry
	for i := range 2000 {
		n := 1024 + (i*997)%(63<<10)
		files = append(files, tartest.File(fmt.Sprintf("d%02d/f%04d", i%50, i), "", tartest.Bytes(data[:n])))
	}
	in := tartest.Tar(b, files...)
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for range b.N {
		if _, err := source.FromTar(context.Background(), bytes.NewReader(in), discardWriter{}); err != nil {
			b.Fatal(err)
		}
	}
}
