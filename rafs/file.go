package rafs

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// ReadFile reads len(p) bytes of regular file nid at off through src. It
// returns io.EOF when off+len(p) passes the end of the file.
func (m *Image) ReadFile(ctx context.Context, src ChunkSource, nid uint64, p []byte, off int64) (int, error) {
	ino, err := m.Inode(nid)
	if err != nil {
		return 0, err
	}
	chunks, err := m.inodeChunks(ino)
	if err != nil {
		return 0, err
	}
	return m.readChunks(ctx, src, ino.Size, chunks, p, off, nil)
}

// lastChunk remembers the most recently decoded chunk of a file, so small
// sequential reads do not decode the same chunk again.
type lastChunk struct {
	mu   sync.Mutex
	idx  uint64
	data []byte
}

func (l *lastChunk) get(i uint64) []byte {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.data != nil && l.idx == i {
		return l.data
	}
	return nil
}

func (l *lastChunk) put(i uint64, data []byte) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.idx, l.data = i, data
	l.mu.Unlock()
}

func (m *Image) readChunks(ctx context.Context, src ChunkSource, size uint64, chunks []Chunk, p []byte, off int64, last *lastChunk) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("rafs: negative offset %d", off)
	}
	if uint64(off) >= size {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	want := min(uint64(len(p)), size-uint64(off))
	cs := uint64(m.ext.ChunkSize)
	n := uint64(0)
	for n < want {
		pos := uint64(off) + n
		ci := pos / cs
		if ci >= uint64(len(chunks)) {
			return int(n), formatErr("file offset %d has no chunk", pos)
		}
		c := &chunks[ci]
		data := last.get(ci)
		if data == nil {
			var err error
			if data, err = src.ReadChunk(ctx, c.Blob, &c.Info); err != nil {
				return int(n), err
			}
			last.put(ci, data)
		}
		if uint64(len(data)) != uint64(c.Info.UncompressedSize) {
			return int(n), formatErr("chunk source returned %d bytes for a %d-byte chunk", len(data), c.Info.UncompressedSize)
		}
		in := pos - ci*cs
		n += uint64(copy(p[n:want], data[in:]))
	}
	if n < uint64(len(p)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// FileReader returns an io.ReaderAt over regular file nid.
func (m *Image) FileReader(ctx context.Context, src ChunkSource, nid uint64) (*FileReader, error) {
	ino, err := m.Inode(nid)
	if err != nil {
		return nil, err
	}
	chunks, err := m.inodeChunks(ino)
	if err != nil {
		return nil, err
	}
	return &FileReader{m: m, ctx: ctx, src: src, size: ino.Size, chunks: chunks, last: &lastChunk{}}, nil
}

// FileReader reads one regular file; it implements io.ReaderAt.
type FileReader struct {
	m      *Image
	ctx    context.Context
	src    ChunkSource
	size   uint64
	chunks []Chunk
	last   *lastChunk
}

// Size returns the file size.
func (f *FileReader) Size() int64 { return int64(f.size) }

// ReadAt implements io.ReaderAt.
func (f *FileReader) ReadAt(p []byte, off int64) (int, error) {
	return f.m.readChunks(f.ctx, f.src, f.size, f.chunks, p, off, f.last)
}

// ReadAtContext is ReadAt bounded by ctx instead of the reader's context.
func (f *FileReader) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	return f.m.readChunks(ctx, f.src, f.size, f.chunks, p, off, f.last)
}

// ChunkAt returns the chunk holding file offset off.
func (f *FileReader) ChunkAt(off int64) (*Chunk, bool) {
	if off < 0 || uint64(off) >= f.size {
		return nil, false
	}
	i := uint64(off) / uint64(f.m.ext.ChunkSize)
	if i >= uint64(len(f.chunks)) {
		return nil, false
	}
	return &f.chunks[i], true
}
