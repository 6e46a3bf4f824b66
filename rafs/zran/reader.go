package zran

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/klauspost/compress/flate"
)

// ReadAt reads len(p) uncompressed bytes at off from the gzip stream in
// ra, resuming inflation at the nearest checkpoint. It returns io.EOF when
// the range passes the end of the stream.
func (ix *Index) ReadAt(ra io.ReaderAt, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("zran: negative offset %d", off)
	}
	if off >= ix.Size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := min(int64(len(p)), ix.Size-off)
	var n int64
	for n < want {
		k, err := ix.readFrom(ra, p[n:want], off+n)
		n += int64(k)
		if err != nil {
			return int(n), err
		}
		if k == 0 {
			return int(n), fmt.Errorf("%w: no progress at offset %d", ErrFormat, off+n)
		}
	}
	if n < int64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// readFrom reads as much of p at off as the member holding off provides.
func (ix *Index) readFrom(ra io.ReaderAt, p []byte, off int64) (int, error) {
	i := sort.Search(len(ix.Checkpoints), func(i int) bool { return ix.Checkpoints[i].Out > off }) - 1
	if i < 0 {
		return 0, fmt.Errorf("%w: no checkpoint before offset %d", ErrFormat, off)
	}
	cp := ix.Checkpoints[i]
	mem := ix.members[cp.Member]
	memEnd := mem.out + mem.outLen
	fr, err := ix.resume(ra, cp)
	if err != nil {
		return 0, err
	}
	defer fr.Close()
	if _, err := io.CopyN(io.Discard, fr, off-cp.Out); err != nil {
		return 0, fmt.Errorf("%w: resuming at %d: %v", ErrFormat, cp.In, err) //nolint:errorlint // ErrFormat alone classifies: an inflater's io.EOF or io.ErrUnexpectedEOF must not pass for the end of the stream
	}
	k := min(int64(len(p)), memEnd-off)
	n, err := io.ReadFull(fr, p[:k])
	if err != nil && !(errors.Is(err, io.EOF) && int64(n) == k) {
		return n, fmt.Errorf("%w: inflating from %d: %v", ErrFormat, cp.In, err) //nolint:errorlint // ErrFormat alone classifies: an inflater's io.EOF or io.ErrUnexpectedEOF must not pass for the end of the stream
	}
	return n, nil
}

// resume starts inflating at checkpoint cp.
func (ix *Index) resume(ra io.ReaderAt, cp Checkpoint) (io.ReadCloser, error) {
	start := cp.In
	rcp := flate.InflateCheckpoint{UncompressedOffset: cp.Out, Window: cp.Window}
	if cp.Bits > 0 {
		start--
		rcp.BitOffset = 8 - cp.Bits
	}
	if start < 0 || start > ix.CompressedSize {
		return nil, fmt.Errorf("%w: checkpoint at %d outside the stream", ErrFormat, cp.In)
	}
	sr := io.NewSectionReader(ra, start, ix.CompressedSize-start)
	return flate.NewReaderOpts(bufio.NewReaderSize(sr, 64<<10), flate.WithResumeFrom(rcp)), nil
}
