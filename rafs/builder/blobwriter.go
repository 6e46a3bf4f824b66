package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"github.com/gonydus/nydus/rafs/blob"
	"github.com/gonydus/nydus/rafs/compress"
	"github.com/gonydus/nydus/rafs/digest"
	"github.com/gonydus/nydus/rafs/layout"
)

// PlaceholderBlobID is the id an inline bootstrap records for its own blob,
// whose real id (the hash of the whole blob) is unknown while it is written.
const PlaceholderBlobID = blob.PlaceholderID

// Option configures NewBlobWriter and Build. WithBaseBlobs,
// WithInlineBootstrap and WithExplicitUIDGID are about the bootstrap and
// matter to Build only.
type Option func(*config) error

type config struct {
	compressor layout.Compressor
	digester   layout.Digester
	chunkSize  uint32
	blobIndex  uint32
	workers    int
	dict       ChunkDict
	toc        bool

	// Build only.
	baseBlobs       []*layout.BlobEntry
	inlineBootstrap bool
	explicitUIDGID  bool
}

// defaultConfig is upstream nydus-image's defaults.
func defaultConfig() config {
	return config{
		compressor:     layout.CompressZstd,
		digester:       layout.DigestBlake3,
		chunkSize:      layout.DefaultChunkSize,
		workers:        runtime.GOMAXPROCS(0),
		toc:            true,
		explicitUIDGID: true,
	}
}

func newConfig(opts []Option) (config, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// WithCompressor selects the chunk compressor (default zstd).
func WithCompressor(c layout.Compressor) Option {
	return func(o *config) error {
		switch c {
		case layout.CompressNone, layout.CompressLZ4, layout.CompressZstd:
			o.compressor = c
			return nil
		}
		return fmt.Errorf("builder: compressor %v cannot be used for native blobs", c)
	}
}

// WithDigester selects the chunk digester (default blake3).
func WithDigester(d layout.Digester) Option {
	return func(o *config) error {
		if d != layout.DigestBlake3 && d != layout.DigestSHA256 {
			return fmt.Errorf("builder: unknown digester %d", d)
		}
		o.digester = d
		return nil
	}
}

// WithChunkSize sets the chunk size (power of two, 4 KiB..16 MiB).
func WithChunkSize(n uint32) Option {
	return func(o *config) error {
		if !layout.ValidChunkSize(uint64(n)) {
			return fmt.Errorf("builder: chunk size %#x is not a power of two in [0x1000, 0x1000000]", n)
		}
		o.chunkSize = n
		return nil
	}
}

// WithBlobIndex sets the index of the new blob in the image's blob table
// (WithBaseBlobs sets it too).
func WithBlobIndex(i uint32) Option {
	return func(o *config) error {
		if i >= layout.MaxBlobs-1 {
			return fmt.Errorf("builder: blob index %d out of range", i)
		}
		o.blobIndex = i
		return nil
	}
}

// WithWorkers sets the number of goroutines digesting and compressing.
func WithWorkers(n int) Option {
	return func(o *config) error {
		if n < 1 {
			return fmt.Errorf("builder: workers must be positive, got %d", n)
		}
		o.workers = n
		return nil
	}
}

// WithChunkDict lets chunks already stored elsewhere (a chunk dictionary or
// parent layers) be referenced instead of written again.
func WithChunkDict(d ChunkDict) Option {
	return func(o *config) error { o.dict = d; return nil }
}

// WithTOC writes the blob ToC and chunk digest array ("blob-toc" feature,
// on by default).
func WithTOC(on bool) Option {
	return func(o *config) error { o.toc = on; return nil }
}

// ChunkDict finds an existing chunk by digest.
type ChunkDict interface {
	// LookupChunk returns a stored chunk with this digest, or nil.
	LookupChunk(d digest.Digest) *layout.ChunkInfo
}

// BlobWriter cuts files into chunks and writes them to a blob stream.
// WriteFile may be called from one goroutine at a time; digesting and
// compression run on WithWorkers goroutines.
type BlobWriter struct {
	cfg   config
	codec compress.Codec
	out   *countingWriter

	jobs    chan *chunkJob // to workers
	ordered chan *chunkJob // to the writer, in submission order
	done    chan struct{}
	wg      sync.WaitGroup
	bufs    sync.Pool // chunk data
	comps   sync.Pool // compressed chunks, back once written

	// Owned by the writer goroutine until done is closed.
	unique   []*layout.ChunkInfo
	byDigest map[digest.Digest]*layout.ChunkInfo
	uoff     uint64
	err      error

	closed bool
}

type chunkJob struct {
	data  []byte
	out   *layout.ChunkInfo
	comp  []byte
	ready chan struct{}
}

type countingWriter struct {
	w    io.Writer
	n    uint64
	hash hash.Hash
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	c.hash.Write(p[:n])
	return n, err
}

// NewBlobWriter returns a writer of a new blob to w.
func NewBlobWriter(w io.Writer, opts ...Option) (*BlobWriter, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return newBlobWriter(w, cfg)
}

func newBlobWriter(w io.Writer, cfg config) (*BlobWriter, error) {
	codec, err := compress.New(cfg.compressor)
	if err != nil {
		return nil, err
	}
	b := &BlobWriter{
		cfg:      cfg,
		codec:    codec,
		out:      &countingWriter{w: w, hash: sha256.New()},
		jobs:     make(chan *chunkJob, cfg.workers*8),
		ordered:  make(chan *chunkJob, inFlight(cfg.workers, cfg.chunkSize)),
		done:     make(chan struct{}),
		byDigest: make(map[digest.Digest]*layout.ChunkInfo),
	}
	b.bufs.New = func() any { return make([]byte, cfg.chunkSize) }
	b.comps.New = func() any { return make([]byte, 0, cfg.chunkSize) }
	for range cfg.workers {
		b.wg.Add(1)
		go b.work()
	}
	go b.writeLoop()
	return b, nil
}

func (b *BlobWriter) work() {
	defer b.wg.Done()
	for j := range b.jobs {
		d := digest.Sum(b.cfg.digester, j.data)
		j.out.Digest = d
		j.out.UncompressedSize = uint32(len(j.data))
		if b.cfg.dict == nil || b.cfg.dict.LookupChunk(d) == nil {
			dst := b.comps.Get().([]byte)
			comp, err := b.codec.Compress(dst[:0], j.data)
			if err == nil && len(comp) < len(j.data) {
				j.comp = comp
			} else {
				b.comps.Put(dst[:0]) //nolint:staticcheck // slices are fine in a pool here
			}
		}
		close(j.ready)
	}
}

func (b *BlobWriter) writeLoop() {
	defer close(b.done)
	for j := range b.ordered {
		<-j.ready
		if b.err == nil {
			b.err = b.place(j)
		}
		b.bufs.Put(j.data[:cap(j.data)]) //nolint:staticcheck // slices are fine in a pool here
		if j.comp != nil {
			// place has written it (or found the chunk stored already).
			b.comps.Put(j.comp[:0]) //nolint:staticcheck // slices are fine in a pool here
			j.comp = nil
		}
	}
}

// place writes or dedups one chunk. It runs on the writer goroutine.
func (b *BlobWriter) place(j *chunkJob) error {
	fileOff := j.out.FileOffset
	if prev := b.byDigest[j.out.Digest]; prev != nil {
		*j.out = *prev
		j.out.FileOffset = fileOff
		return nil
	}
	if b.cfg.dict != nil {
		if prev := b.cfg.dict.LookupChunk(j.out.Digest); prev != nil {
			*j.out = *prev
			j.out.FileOffset = fileOff
			return nil
		}
	}
	if len(b.unique) >= layout.MaxChunksPerBlob-1 {
		return fmt.Errorf("builder: blob exceeds %d chunks", layout.MaxChunksPerBlob-1)
	}
	data, flags := j.data, layout.ChunkFlags(0)
	if j.comp != nil {
		data, flags = j.comp, layout.ChunkCompressed
	}
	j.out.BlobIndex = b.cfg.blobIndex
	j.out.Flags = flags
	j.out.CompressedOffset = b.out.n
	j.out.CompressedSize = uint32(len(data))
	j.out.UncompressedOffset = b.uoff
	j.out.Index = uint32(len(b.unique))
	if _, err := b.out.Write(data); err != nil {
		return fmt.Errorf("builder: write blob: %w", err)
	}
	b.uoff += alignUp(uint64(len(j.data)), layout.BlockSize)
	b.unique = append(b.unique, j.out)
	b.byDigest[j.out.Digest] = j.out
	return nil
}

// WriteFile reads size bytes of file data from r and returns the file's
// chunks. The returned entries are final only after Finish.
func (b *BlobWriter) WriteFile(r io.Reader, size int64) ([]*layout.ChunkInfo, error) {
	if b.closed {
		return nil, errors.New("builder: blob writer already finished")
	}
	if size < 0 {
		return nil, fmt.Errorf("builder: negative file size %d", size)
	}
	n := (size + int64(b.cfg.chunkSize) - 1) / int64(b.cfg.chunkSize)
	chunks := make([]*layout.ChunkInfo, 0, n)
	for off := int64(0); off < size; {
		want := min(int64(b.cfg.chunkSize), size-off)
		buf := b.bufs.Get().([]byte)[:want]
		if _, err := io.ReadFull(r, buf); err != nil {
			b.bufs.Put(buf[:cap(buf)]) //nolint:staticcheck // as above: slices are fine in a pool here
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("builder: read file data at %d of %d: %w", off, size, err)
		}
		j := &chunkJob{data: buf, out: &layout.ChunkInfo{FileOffset: uint64(off)}, ready: make(chan struct{})}
		b.ordered <- j
		b.jobs <- j
		chunks = append(chunks, j.out)
		off += want
	}
	return chunks, nil
}

// BlobResult describes a finished blob.
type BlobResult struct {
	// Entry is the blob-table entry, with the real blob id.
	Entry layout.BlobEntry
	// Chunks are the unique chunks stored in the blob, by chunk-info index.
	Chunks []*layout.ChunkInfo
	// Size is the number of bytes written.
	Size uint64
}

// ID returns the blob id (sha256 of the blob).
func (r *BlobResult) ID() string { return r.Entry.ID() }

// InlineBootstrap produces the bootstrap to embed in the blob, given the
// blob-table entry it must record for this blob (placeholder id, sizes up to
// the chunk digests, no ToC). It returns the uncompressed bootstrap.
type InlineBootstrap func(entry *layout.BlobEntry) ([]byte, error)

// Finish waits for all chunks, writes the blob tail and returns the blob's
// description. With inline non-nil the bootstrap it returns is embedded.
func (b *BlobWriter) Finish(inline InlineBootstrap) (*BlobResult, error) {
	if b.closed {
		return nil, errors.New("builder: blob writer already finished")
	}
	b.closed = true
	close(b.jobs)
	close(b.ordered)
	b.wg.Wait()
	<-b.done
	if b.err != nil {
		return nil, b.err
	}
	t := tailWriter{b: b}
	return t.write(inline)
}

// Abort stops the workers without writing a tail.
func (b *BlobWriter) Abort() {
	if b.closed {
		return
	}
	b.closed = true
	close(b.jobs)
	close(b.ordered)
	b.wg.Wait()
	<-b.done
}

// inFlight bounds the chunks read ahead of the writer: enough to keep the
// workers busy through runs of tiny files, at most ~128 MiB of buffers.
func inFlight(workers int, chunkSize uint32) int {
	n := (128 << 20) / int(chunkSize)
	return max(workers*4, min(workers*32, n))
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

func hexID(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }
