package cache

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs/layout"
)

// File name suffixes inside a cache work directory.
const (
	DataSuffix     = ".blob.data"
	RawSuffix      = ".blob.raw"
	ChunkMapSuffix = ".blob.data.chunk_map"
)

// ErrClosed is returned by operations on a closed BlobFile.
var ErrClosed = errors.New("cache: blob file closed")

// BlobFile is the on-disk cache of one data blob. It is safe for
// concurrent use, also by several processes sharing the work directory.
type BlobFile struct {
	cfg     config
	id      string
	name    string // file name stem: the blob id, or id.<table> when another table has the id's files
	dir     string
	data    *os.File
	dataLen int64
	m       *ChunkMap

	// life guards m and data against use after Close: operations hold it
	// shared, Close exclusively.
	life   sync.RWMutex
	isShut bool

	mu       sync.Mutex
	cond     *sync.Cond
	queued   map[uint32]struct{} // written, waiting for sync + bit
	batch    []uint32            // queued chunks in write order
	bytes    int64               // bytes in batch
	flushing bool                // a sync is running
	flushReq bool                // someone waits for an immediate flush
	closed   bool
	done     chan struct{}
}

// Open opens (creating as needed) the cache files of blob entry in dir.
// Files of the wrong size and invalid chunk maps are rebuilt empty.
func Open(dir string, entry *layout.BlobEntry, opts ...Option) (*BlobFile, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	id := entry.ID()
	if id == "" || filepath.Base(id) != id || id == "." || id == ".." {
		return nil, fmt.Errorf("cache: blob id %q is not a file name", id)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	b := &BlobFile{cfg: cfg, id: id, dir: dir, queued: map[uint32]struct{}{}, done: make(chan struct{})}
	b.cond = sync.NewCond(&b.mu)
	suffix, size := DataSuffix, int64(entry.UncompressedSize)
	if cfg.compressed {
		suffix, size = RawSuffix, int64(compressedDataSize(entry))
	}
	b.dataLen = size
	// The chunk map first: it decides which files are this table's.
	var err error
	var rebuilt bool
	b.name = id
	switch {
	case !cfg.persistMap:
		b.m, rebuilt, err = OpenChunkMap("", entry.ChunkCount)
	case cfg.table == nil:
		b.m, rebuilt, err = OpenChunkMap(filepath.Join(dir, id+ChunkMapSuffix), entry.ChunkCount)
	default:
		b.m, rebuilt, err = openChunkMap(filepath.Join(dir, id+ChunkMapSuffix), entry.ChunkCount, cfg.table)
		if errors.Is(err, ErrOtherTable) {
			// Another image names this blob id with another chunk table:
			// it keeps its files, this table gets its own.
			b.name = id + "." + hex.EncodeToString(cfg.table[:8])
			cfg.log.Warn("cache: blob id shared with another chunk table, caching apart", "blob", id, "files", b.name)
			b.m, rebuilt, err = openChunkMap(filepath.Join(dir, b.name+ChunkMapSuffix), entry.ChunkCount, cfg.table)
		}
	}
	if err != nil {
		return nil, err
	}
	if rebuilt {
		cfg.log.Warn("cache: rebuilt invalid chunk map", "blob", id, "dir", dir)
	}
	b.data, err = os.OpenFile(filepath.Join(dir, b.name+suffix), os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		err = b.sizeDataFile(size)
	}
	if err != nil {
		if b.data != nil {
			b.data.Close()
		}
		b.m.Close()
		return nil, fmt.Errorf("cache: %w", err)
	}
	if cfg.syncInterval > 0 {
		go b.flusher()
	} else {
		close(b.done)
	}
	return b, nil
}

// compressedDataSize returns the size of the chunk data region of a blob:
// everything before the ci array (and its tar header) when the blob has a
// tail, else the whole blob.
func compressedDataSize(e *layout.BlobEntry) uint64 {
	if e.CIOffset == 0 || e.CIOffset > e.CompressedSize {
		return e.CompressedSize
	}
	end := e.CIOffset
	if e.Features&layout.BlobHasTarHeader != 0 && end >= 512 {
		end -= 512
	}
	return end
}

// sizeDataFile gives the data file its expected size. An existing file of
// another size is discarded, and every bit of the chunk map with it: the
// bits go first, durably, so that a crash at any point never leaves set
// bits over zeroed data.
func (b *BlobFile) sizeDataFile(size int64) error {
	st, err := b.data.Stat()
	if err != nil {
		return err
	}
	if st.Size() == size {
		return nil
	}
	if st.Size() != 0 {
		b.cfg.log.Warn("cache: data file has the wrong size, discarding it", "file", b.data.Name(), "size", st.Size(), "want", size)
		if err := b.m.Reset(); err != nil {
			return fmt.Errorf("drop the chunk map of a discarded data file: %w", err)
		}
		b.cfg.crashPoint("map-reset")
		if err := b.data.Truncate(0); err != nil {
			return err
		}
	}
	if err := b.data.Truncate(size); err != nil {
		return err
	}
	b.cfg.crashPoint("data-resized")
	return nil
}

// Compressed reports whether the cache stores compressed chunk bytes.
func (b *BlobFile) Compressed() bool { return b.cfg.compressed }

// Files returns the names (relative to the work dir) of the cache files.
func (b *BlobFile) Files() []string {
	name := filepath.Base(b.data.Name())
	if !b.cfg.persistMap {
		return []string{name}
	}
	return []string{name, b.name + ChunkMapSuffix}
}

// Dir returns the work directory.
func (b *BlobFile) Dir() string { return b.dir }

// extent returns where chunk c's stored bytes live in the data file.
func (b *BlobFile) extent(c *layout.ChunkInfo) (off, n int64, err error) {
	off, n = int64(c.UncompressedOffset), int64(c.UncompressedSize)
	if b.cfg.compressed {
		off, n = int64(c.CompressedOffset), int64(c.CompressedSize)
	}
	if c.Index >= b.m.Count() || n <= 0 || off < 0 || off+n > b.dataLen {
		return 0, 0, fmt.Errorf("cache: blob %s: chunk %d (%d+%d) outside the cache file (%d bytes, %d chunks)", b.id, c.Index, off, n, b.dataLen, b.m.Count())
	}
	return off, n, nil
}

// Ready reports whether chunk c can be served from the cache.
func (b *BlobFile) Ready(c *layout.ChunkInfo) bool {
	b.life.RLock()
	defer b.life.RUnlock()
	if b.isShut {
		return false
	}
	return b.ready(c)
}

func (b *BlobFile) ready(c *layout.ChunkInfo) bool {
	if b.m.IsReady(c.Index) {
		return true
	}
	b.mu.Lock()
	_, ok := b.queued[c.Index]
	b.mu.Unlock()
	return ok
}

// Get returns the stored bytes of chunk c (uncompressed, or compressed in
// compressed mode) in dst's storage when large enough. ok is false when the
// chunk is not cached.
func (b *BlobFile) Get(c *layout.ChunkInfo, dst []byte) (data []byte, ok bool, err error) {
	b.life.RLock()
	defer b.life.RUnlock()
	if b.isShut || !b.ready(c) {
		return nil, false, nil
	}
	off, n, err := b.extent(c)
	if err != nil {
		return nil, false, err
	}
	if int64(cap(dst)) >= n {
		dst = dst[:n]
	} else {
		dst = make([]byte, n)
	}
	if _, err := b.data.ReadAt(dst, off); err != nil {
		return nil, false, fmt.Errorf("cache: blob %s: read chunk %d: %w", b.id, c.Index, err)
	}
	return dst, true, nil
}

// Put stores the bytes of chunk c, which the caller has verified. The chunk
// becomes readable by this process at once and is marked ready in the
// chunk map once the data is durable. A write error (e.g. ENOSPC) leaves
// the chunk uncached and the cache valid.
func (b *BlobFile) Put(c *layout.ChunkInfo, stored []byte) error {
	b.life.RLock()
	defer b.life.RUnlock()
	if b.isShut {
		return ErrClosed
	}
	off, n, err := b.extent(c)
	if err != nil {
		return err
	}
	if int64(len(stored)) != n {
		return fmt.Errorf("cache: blob %s: chunk %d has %d bytes, want %d", b.id, c.Index, len(stored), n)
	}
	if b.ready(c) {
		return nil
	}
	if _, err := b.data.WriteAt(stored, off); err != nil {
		// Give back blocks a partial write may have allocated.
		_ = unix.Fallocate(int(b.data.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
		return fmt.Errorf("cache: blob %s: write chunk %d: %w", b.id, c.Index, err)
	}
	if b.cfg.syncInterval == 0 {
		if err := unix.Fdatasync(int(b.data.Fd())); err != nil {
			return fmt.Errorf("cache: blob %s: sync chunk %d: %w", b.id, c.Index, err)
		}
		return b.m.SetReady(c.Index)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.queued[c.Index]; !ok {
		b.queued[c.Index] = struct{}{}
		b.batch = append(b.batch, c.Index)
		b.bytes += n
		b.cond.Broadcast()
	}
	return nil
}

// Invalidate marks chunk c not cached, e.g. after it failed verification.
func (b *BlobFile) Invalidate(c *layout.ChunkInfo) error {
	b.life.RLock()
	defer b.life.RUnlock()
	if b.isShut {
		return ErrClosed
	}
	b.mu.Lock()
	if _, ok := b.queued[c.Index]; ok {
		delete(b.queued, c.Index)
		for i, idx := range b.batch {
			if idx == c.Index {
				b.batch = append(b.batch[:i], b.batch[i+1:]...)
				break
			}
		}
	}
	b.mu.Unlock()
	return b.m.Clear(c.Index)
}

// Stats describes the readiness of the cache.
type Stats struct {
	Chunks   uint32 // chunks in the blob
	Ready    uint32 // chunks marked ready in the chunk map
	Pending  int    // chunks written, waiting to become durable
	AllReady bool   // chunk map header marks the blob complete
}

// Stats returns the current readiness counts.
func (b *BlobFile) Stats() Stats {
	b.life.RLock()
	defer b.life.RUnlock()
	if b.isShut {
		return Stats{}
	}
	b.mu.Lock()
	pending := len(b.queued)
	b.mu.Unlock()
	return Stats{Chunks: b.m.Count(), Ready: b.m.Ready(), Pending: pending, AllReady: b.m.Complete()}
}

// flusher makes queued chunks durable in batches and marks them ready.
func (b *BlobFile) flusher() {
	defer close(b.done)
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		for len(b.batch) == 0 && !b.closed {
			b.cond.Wait()
		}
		if len(b.batch) == 0 && b.closed {
			return
		}
		if !b.closed && !b.flushReq && b.bytes < b.cfg.syncBytes {
			deadline := time.Now().Add(b.cfg.syncInterval)
			t := time.AfterFunc(b.cfg.syncInterval, func() {
				b.mu.Lock()
				b.cond.Broadcast()
				b.mu.Unlock()
			})
			for !b.closed && !b.flushReq && b.bytes < b.cfg.syncBytes && time.Now().Before(deadline) {
				b.cond.Wait()
			}
			t.Stop()
		}
		batch := b.batch
		b.batch, b.bytes, b.flushReq = nil, 0, false
		b.flushing = true
		b.mu.Unlock()
		err := b.commit(batch)
		b.mu.Lock()
		for _, idx := range batch {
			delete(b.queued, idx)
		}
		b.flushing = false
		b.cond.Broadcast()
		if err != nil {
			b.cfg.log.Warn("cache: could not make chunks durable; they will be fetched again", "blob", b.id, "chunks", len(batch), "err", err)
		}
	}
}

// commit syncs the data file and then sets the bits of batch.
func (b *BlobFile) commit(batch []uint32) error {
	if err := unix.Fdatasync(int(b.data.Fd())); err != nil {
		return fmt.Errorf("cache: blob %s: sync data: %w", b.id, err)
	}
	var errs []error
	for _, idx := range batch {
		errs = append(errs, b.m.SetReady(idx))
	}
	return errors.Join(errs...)
}

// Flush makes every chunk Put so far durable and marks it ready.
func (b *BlobFile) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cfg.syncInterval == 0 {
		return nil
	}
	for (len(b.batch) > 0 || b.flushing) && !(b.closed && b.doneClosed()) {
		b.flushReq = true
		b.cond.Broadcast()
		b.cond.Wait()
	}
	return nil
}

func (b *BlobFile) doneClosed() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// Close flushes pending chunks and closes the files.
func (b *BlobFile) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.cond.Broadcast()
	b.mu.Unlock()
	<-b.done
	b.life.Lock()
	defer b.life.Unlock()
	b.isShut = true
	return errors.Join(b.m.Close(), b.data.Close())
}
