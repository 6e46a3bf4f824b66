package storage

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics collects the counters of a set of blobs sharing one cache (one
// RAFS mount). It is safe for concurrent use; Snapshot renders it in the
// shape of nydusd's /api/v1/metrics/blobcache.
type Metrics struct {
	id        string
	storePath string

	total       atomic.Uint64 // read requests
	wholeHits   atomic.Uint64 // requests served entirely from the cache
	partialHits atomic.Uint64 // requests served partly from the cache
	entries     atomic.Uint64 // blobs opened

	prefetchBytes    atomic.Uint64
	prefetchRequests atomic.Uint64
	prefetchWorkers  atomic.Int64
	prefetchUnmerged atomic.Uint64
	prefetchMillis   atomic.Uint64
	prefetchBegin    atomic.Int64 // unix ms, 0 = never
	prefetchEnd      atomic.Int64

	buffered       atomic.Int64 // bytes fetched from the backend and not yet stored
	backendReads   atomic.Uint64
	backendBytes   atomic.Uint64
	backendErrors  atomic.Uint64
	corruptFetched atomic.Uint64 // backend data that failed verification
	corruptCached  atomic.Uint64 // cached data that failed verification
	cacheErrors    atomic.Uint64 // cache writes that failed (e.g. ENOSPC)

	// Reads times user read requests end to end; CachedReads times chunk
	// reads served from the cache; Fetches times backend reads (one per
	// merged range).
	Reads       Histogram
	CachedReads Histogram
	Fetches     Histogram

	mu    sync.Mutex
	files map[string]struct{}
	ready map[*Blob]func() bool
}

// NewMetrics returns metrics named id for a cache in storePath.
func NewMetrics(id, storePath string) *Metrics {
	return &Metrics{id: id, storePath: storePath, files: map[string]struct{}{}, ready: map[*Blob]func() bool{}}
}

func (m *Metrics) addBlob(b *Blob, files []string, allReady func() bool) {
	m.entries.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range files {
		m.files[f] = struct{}{}
	}
	m.ready[b] = allReady
}

func (m *Metrics) removeBlob(b *Blob) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.ready, b)
}

// PrefetchStarted records the start of a prefetch run with workers workers.
func (m *Metrics) PrefetchStarted(workers int) {
	m.prefetchWorkers.Add(int64(workers))
	m.prefetchBegin.CompareAndSwap(0, time.Now().UnixMilli())
}

// PrefetchFinished records the end of a prefetch run started with workers.
func (m *Metrics) PrefetchFinished(workers int, elapsed time.Duration) {
	m.prefetchWorkers.Add(-int64(workers))
	m.prefetchEnd.Store(time.Now().UnixMilli())
	m.prefetchMillis.Add(uint64(elapsed.Milliseconds()))
}

// PrefetchFetched records prefetch traffic: requests merged backend reads
// carrying chunks chunks and bytes compressed bytes.
func (m *Metrics) PrefetchFetched(requests, chunks int, bytes uint64) {
	m.prefetchRequests.Add(uint64(requests))
	m.prefetchUnmerged.Add(uint64(chunks))
	m.prefetchBytes.Add(bytes)
}

// BlobcacheMetrics is the JSON body of GET /api/v1/metrics/blobcache,
// extended with backend and verification counters and latency histograms.
type BlobcacheMetrics struct {
	ID                           string   `json:"id"`
	UnderlyingFiles              []string `json:"underlying_files"`
	StorePath                    string   `json:"store_path"`
	PartialHits                  uint64   `json:"partial_hits"`
	WholeHits                    uint64   `json:"whole_hits"`
	Total                        uint64   `json:"total"`
	EntriesCount                 uint64   `json:"entries_count"`
	PrefetchDataAmount           uint64   `json:"prefetch_data_amount"`
	PrefetchRequestsCount        uint64   `json:"prefetch_requests_count"`
	PrefetchWorkers              uint64   `json:"prefetch_workers"`
	PrefetchUnmergedChunks       uint64   `json:"prefetch_unmerged_chunks"`
	PrefetchCumulativeTimeMillis uint64   `json:"prefetch_cumulative_time_millis"`
	PrefetchBeginTimeSecs        uint64   `json:"prefetch_begin_time_secs"`
	PrefetchBeginTimeMillis      uint64   `json:"prefetch_begin_time_millis"`
	PrefetchEndTimeSecs          uint64   `json:"prefetch_end_time_secs"`
	PrefetchEndTimeMillis        uint64   `json:"prefetch_end_time_millis"`
	BufferedBackendSize          uint64   `json:"buffered_backend_size"`
	DataAllReady                 bool     `json:"data_all_ready"`

	BackendReads       uint64            `json:"backend_reads"`
	BackendBytes       uint64            `json:"backend_bytes"`
	BackendErrors      uint64            `json:"backend_errors"`
	CorruptFetched     uint64            `json:"corrupt_fetched_chunks"`
	CorruptCached      uint64            `json:"corrupt_cached_chunks"`
	CacheWriteErrors   uint64            `json:"cache_write_errors"`
	ReadLatency        HistogramSnapshot `json:"read_latency"`
	CachedReadLatency  HistogramSnapshot `json:"cached_read_latency"`
	BackendReadLatency HistogramSnapshot `json:"backend_read_latency"`
}

// Snapshot returns the current values.
func (m *Metrics) Snapshot() BlobcacheMetrics {
	s := BlobcacheMetrics{
		ID:                           m.id,
		StorePath:                    m.storePath,
		PartialHits:                  m.partialHits.Load(),
		WholeHits:                    m.wholeHits.Load(),
		Total:                        m.total.Load(),
		EntriesCount:                 m.entries.Load(),
		PrefetchDataAmount:           m.prefetchBytes.Load(),
		PrefetchRequestsCount:        m.prefetchRequests.Load(),
		PrefetchWorkers:              uint64(max(m.prefetchWorkers.Load(), 0)),
		PrefetchUnmergedChunks:       m.prefetchUnmerged.Load(),
		PrefetchCumulativeTimeMillis: m.prefetchMillis.Load(),
		BufferedBackendSize:          uint64(max(m.buffered.Load(), 0)),
		BackendReads:                 m.backendReads.Load(),
		BackendBytes:                 m.backendBytes.Load(),
		BackendErrors:                m.backendErrors.Load(),
		CorruptFetched:               m.corruptFetched.Load(),
		CorruptCached:                m.corruptCached.Load(),
		CacheWriteErrors:             m.cacheErrors.Load(),
		ReadLatency:                  m.Reads.Snapshot(),
		CachedReadLatency:            m.CachedReads.Snapshot(),
		BackendReadLatency:           m.Fetches.Snapshot(),
		UnderlyingFiles:              []string{},
	}
	if ms := m.prefetchBegin.Load(); ms != 0 {
		s.PrefetchBeginTimeSecs, s.PrefetchBeginTimeMillis = uint64(ms/1000), uint64(ms%1000)
	}
	if ms := m.prefetchEnd.Load(); ms != 0 {
		s.PrefetchEndTimeSecs, s.PrefetchEndTimeMillis = uint64(ms/1000), uint64(ms%1000)
	}
	m.mu.Lock()
	for f := range m.files {
		s.UnderlyingFiles = append(s.UnderlyingFiles, f)
	}
	s.DataAllReady = len(m.ready) > 0
	for _, ready := range m.ready {
		if !ready() {
			s.DataAllReady = false
		}
	}
	m.mu.Unlock()
	slices.Sort(s.UnderlyingFiles)
	return s
}
