package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage/cache"
)

// Blob reads verified chunks of one data blob through its cache. It is
// safe for concurrent use.
type Blob struct {
	entry *layout.BlobEntry
	id    string
	r     BlobReader
	cfg   blobConfig
	dec   *decoder
	zran  *zranBlob
	table *chunkTable

	flights flights

	backendReads atomic.Uint64
	backendBytes atomic.Uint64
	cacheWarned  atomic.Bool
	closed       atomic.Bool
}

// NewBlob returns the reader of the data blob described by entry, whose
// stored bytes r reads.
func NewBlob(entry *layout.BlobEntry, r BlobReader, opts ...Option) (*Blob, error) {
	cfg := defaultBlobConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if r == nil {
		return nil, errors.New("storage: nil blob reader")
	}
	dec, zr, err := newBlobDecoder(entry, &cfg)
	if err != nil {
		return nil, err
	}
	if cfg.gate == nil {
		cfg.gate = NewGate(DefaultFetchConcurrency)
	}
	if cfg.metrics == nil {
		dir := ""
		if cfg.cache != nil {
			dir = cfg.cache.Dir()
		}
		cfg.metrics = NewMetrics(entry.ID(), dir)
	}
	b := &Blob{entry: entry, id: entry.ID(), r: r, cfg: cfg, dec: dec, zran: zr}
	if len(cfg.table) > 0 {
		b.table = newChunkTable(cfg.table)
	}
	var files []string
	allReady := func() bool { return false }
	if cfg.cache != nil {
		files = cfg.cache.Files()
		allReady = func() bool {
			// Chunks waiting for their sync are already served locally.
			st := cfg.cache.Stats()
			return st.AllReady || uint64(st.Ready)+uint64(st.Pending) >= uint64(st.Chunks)
		}
	}
	cfg.metrics.addBlob(b, files, allReady)
	return b, nil
}

// ID returns the blob id.
func (b *Blob) ID() string { return b.id }

// Entry returns the blob-table entry.
func (b *Blob) Entry() *layout.BlobEntry { return b.entry }

// Table returns the blob's chunks in compressed-offset order (empty
// without WithChunkTable). Callers must not modify it.
func (b *Blob) Table() []*layout.ChunkInfo {
	if b.table == nil {
		return nil
	}
	return b.table.chunks
}

// Gate returns the fetch gate the blob uses.
func (b *Blob) Gate() *Gate { return b.cfg.gate }

// Metrics returns the metrics the blob records into.
func (b *Blob) Metrics() *Metrics { return b.cfg.metrics }

// Ready reports whether chunk c is cached.
func (b *Blob) Ready(c *layout.ChunkInfo) bool {
	return b.cfg.cache != nil && b.cfg.cache.Ready(c)
}

// BlobStats counts backend traffic of one blob.
type BlobStats struct {
	BackendReads uint64 // range requests
	BackendBytes uint64 // bytes requested
}

// Stats returns the blob's backend counters.
func (b *Blob) Stats() BlobStats {
	return BlobStats{BackendReads: b.backendReads.Load(), BackendBytes: b.backendBytes.Load()}
}

// ReadChunk returns the verified uncompressed bytes of chunk c, copied into
// dst's storage when dst is large enough.
func (b *Blob) ReadChunk(ctx context.Context, c *layout.ChunkInfo, dst []byte) ([]byte, error) {
	out, err := b.read(ctx, []*layout.ChunkInfo{c}, dst)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ReadChunks returns the verified uncompressed bytes of chunks, fetching
// missing ones in merged, parallel backend reads. The returned slices may
// be shared with concurrent readers and must not be modified.
func (b *Blob) ReadChunks(ctx context.Context, chunks []*layout.ChunkInfo) ([][]byte, error) {
	return b.read(ctx, chunks, nil)
}

func (b *Blob) read(ctx context.Context, chunks []*layout.ChunkInfo, dst []byte) ([][]byte, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	m := b.cfg.metrics
	m.total.Add(1)
	defer func(start time.Time) { m.Reads.Observe(time.Since(start)) }(time.Now())
	out := make([][]byte, len(chunks))
	var misses []int
	for i, c := range chunks {
		if err := checkChunk(b.entry, c); err != nil {
			return nil, err
		}
		var buf []byte
		if len(chunks) == 1 {
			buf = dst
		}
		if data, ok := b.fromCache(c, buf); ok {
			out[i] = data
			continue
		}
		misses = append(misses, i)
	}
	switch {
	case len(misses) == 0:
		m.wholeHits.Add(1)
		return out, nil
	case len(misses) < len(chunks):
		m.partialHits.Add(1)
	}
	if err := b.fetchMissing(ctx, chunks, misses, out); err != nil {
		return nil, err
	}
	if len(chunks) == 1 && cap(dst) >= len(out[0]) {
		n := copy(dst[:len(out[0])], out[0])
		out[0] = dst[:n]
	}
	return out, nil
}

// fromCache returns chunk c from the cache, verified as configured. A
// chunk that fails verification is invalidated and reported missing.
func (b *Blob) fromCache(c *layout.ChunkInfo, dst []byte) ([]byte, bool) {
	cf := b.cfg.cache
	if cf == nil {
		return nil, false
	}
	start := time.Now()
	buf := dst
	if cf.Compressed() {
		buf = nil
	}
	stored, ok, err := cf.Get(c, buf)
	if err != nil {
		b.cfg.log.Warn("storage: cache read failed, fetching from backend", "blob", b.id, "chunk", c.Index, "err", err)
		return nil, false
	}
	if !ok {
		return nil, false
	}
	data := stored
	if cf.Compressed() {
		data, err = b.dec.decode(c, stored, dst, b.cfg.validate)
	} else if needsCheck(c, b.cfg.validate) {
		err = b.dec.verify(c, stored, b.cfg.validate)
	}
	if err != nil {
		b.cfg.metrics.corruptCached.Add(1)
		b.cfg.log.Warn("storage: cached chunk failed verification, fetching it again", "blob", b.id, "chunk", c.Index, "err", err)
		if err := cf.Invalidate(c); err != nil {
			b.cfg.log.Warn("storage: invalidate cached chunk", "blob", b.id, "chunk", c.Index, "err", err)
		}
		return nil, false
	}
	b.cfg.metrics.CachedReads.Observe(time.Since(start))
	return data, true
}

// maxRetries bounds how often a reader retries a chunk whose shared fetch
// was cancelled by the reader that led it.
const maxRetries = 3

// fetchMissing fills out[i] for i in misses from the backend, sharing
// in-flight fetches with other readers.
func (b *Blob) fetchMissing(ctx context.Context, chunks []*layout.ChunkInfo, misses []int, out [][]byte) error {
	byIndex := make(map[uint32]*flight, len(misses))
	var lead []*layout.ChunkInfo
	var leadFl []*flight
	for _, i := range misses {
		c := chunks[i]
		if _, ok := byIndex[c.Index]; ok {
			continue
		}
		f, isLead := b.flights.join(c.Index)
		byIndex[c.Index] = f
		if !isLead {
			continue
		}
		// Another reader may have stored it between our lookup and join.
		if data, ok := b.fromCache(c, nil); ok {
			b.flights.finish(c.Index, f, data, nil)
			continue
		}
		lead = append(lead, c)
		leadFl = append(leadFl, f)
	}
	if len(lead) > 0 {
		for _, s := range b.plan(lead, leadFl) {
			go b.fetchSpan(ctx, s, PriorityUser)
		}
	}
	for _, i := range misses {
		c := chunks[i]
		data, err := b.waitChunk(ctx, c, byIndex[c.Index])
		if err != nil {
			return err
		}
		out[i] = data
	}
	return nil
}

// waitChunk waits for the flight of c; when the flight failed only because
// the reader leading it gave up, c is fetched again.
func (b *Blob) waitChunk(ctx context.Context, c *layout.ChunkInfo, f *flight) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		data, err := f.wait(ctx)
		if err == nil {
			return data, nil
		}
		if ctx.Err() != nil || attempt >= maxRetries || !(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			return nil, err
		}
		if data, ok := b.fromCache(c, nil); ok {
			return data, nil
		}
		var lead bool
		if f, lead = b.flights.join(c.Index); lead {
			if s := b.chunkSpan(c, f); s != nil {
				go b.fetchSpan(ctx, s, PriorityUser)
			}
		}
	}
}

// amplify extends the last of spans with the uncached chunks that follow
// it in the blob, while the total stays within the amplify size.
func (b *Blob) amplify(spans []*span) {
	if b.cfg.amplify == 0 || b.table == nil || b.cfg.cache == nil || len(spans) == 0 {
		return
	}
	var total uint64
	last := spans[0]
	for _, s := range spans {
		total += s.end - s.off
		if s.end > last.end {
			last = s
		}
	}
	for _, c := range b.table.after(last.chunks[len(last.chunks)-1].Index) {
		if c.CompressedOffset != last.end || total+uint64(c.CompressedSize) > b.cfg.amplify {
			return
		}
		if b.cfg.cache.Ready(c) {
			return
		}
		f := b.flights.lead(c.Index)
		if f == nil {
			return
		}
		last.chunks = append(last.chunks, c)
		last.flights = append(last.flights, f)
		last.end = chunkEnd(c)
		total += uint64(c.CompressedSize)
	}
}

// fetchSpan reads one span from the backend under a gate slot and finishes
// its flights.
func (b *Blob) fetchSpan(ctx context.Context, s *span, p Priority) {
	if b.zran != nil {
		unlock := b.lockContexts(s.chunks)
		defer unlock()
		if !b.pruneCached(s) {
			return
		}
	}
	if err := b.cfg.gate.Acquire(ctx, p); err != nil {
		b.failSpan(s, err)
		return
	}
	defer b.cfg.gate.Release(p)
	_ = b.readSpan(ctx, s) // errors reach the readers through the flights
}

// failSpan fails the flights s leads (a nil flight is a chunk s only
// caches for another reader, whose own fetch reports for it).
func (b *Blob) failSpan(s *span, err error) {
	for i, c := range s.chunks {
		if s.flights[i] != nil {
			b.flights.finish(c.Index, s.flights[i], nil, err)
		}
	}
}

// readSpan fetches, decodes, verifies and caches the chunks of s and
// finishes their flights; the caller holds a gate slot. It returns the
// first error.
func (b *Blob) readSpan(ctx context.Context, s *span) error {
	m := b.cfg.metrics
	n := int64(s.end - s.off)
	buf := make([]byte, n)
	m.buffered.Add(n)
	defer m.buffered.Add(-n)
	start := time.Now()
	got, err := b.r.ReadAt(ctx, buf, int64(s.off))
	m.Fetches.Observe(time.Since(start))
	b.backendReads.Add(1)
	b.backendBytes.Add(uint64(n))
	m.backendReads.Add(1)
	m.backendBytes.Add(uint64(n))
	if got == len(buf) && errors.Is(err, io.EOF) {
		err = nil
	}
	if err == nil && got < len(buf) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		m.backendErrors.Add(1)
		err = fmt.Errorf("storage: blob %s: read %d bytes at %d: %w", b.id, n, s.off, err)
		b.failSpan(s, err)
		return err
	}
	var first error
	decode := b.spanDecoder(s, buf)
	for i, c := range s.chunks {
		raw, data, err := decode(i, c)
		if err != nil {
			m.corruptFetched.Add(1)
			if s.flights[i] != nil {
				b.flights.finish(c.Index, s.flights[i], nil, err)
			}
			if first == nil {
				first = err
			}
			continue
		}
		b.store(c, raw, data)
		if s.flights[i] != nil {
			b.flights.finish(c.Index, s.flights[i], data, nil)
		}
	}
	return first
}

// store puts a verified chunk into the cache. A failed write (full disk)
// is logged and counted; the read is served uncached.
func (b *Blob) store(c *layout.ChunkInfo, raw, data []byte) {
	cf := b.cfg.cache
	if cf == nil {
		return
	}
	stored := data
	if cf.Compressed() {
		stored = raw
	}
	if err := cf.Put(c, stored); err != nil {
		if errors.Is(err, cache.ErrClosed) {
			return // the blob is closing (unmount); nothing to report
		}
		b.cfg.metrics.cacheErrors.Add(1)
		if b.cacheWarned.CompareAndSwap(false, true) {
			b.cfg.log.Warn("storage: cannot write chunk cache, serving reads uncached", "blob", b.id, "chunk", c.Index, "err", err)
		}
	}
}

// Close closes the blob's cache file (flushing pending chunks). Reads
// after Close fail with ErrClosed.
func (b *Blob) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.cfg.metrics.removeBlob(b)
	if b.cfg.cache != nil {
		return b.cfg.cache.Close()
	}
	return nil
}
