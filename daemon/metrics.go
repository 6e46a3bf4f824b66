package daemon

import (
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gonydus/nydus/storage"
)

// Series names follow nydus-snapshotter's pkg/metrics/data where it names
// the same quantity, with the _total suffix on counters and base units
// (bytes, seconds); docs/metrics.md lists the mapping.

// newMetricsHandler returns the handler of GET /metrics: the daemon's
// collector plus the Go runtime and process collectors, in a registry of
// its own.
func newMetricsHandler(d *Daemon) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{d: d},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// collector exports the daemon's metrics; each Collect reads the counters
// of each mount once.
type collector struct{ d *Daemon }

// Describe sends nothing: this is an unchecked collector, since the FUSE
// opcodes are known only at scrape time and mounts come and go. The
// registry still checks each scrape for consistency.
func (c collector) Describe(chan<- *prometheus.Desc) {}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	up := prometheus.NewDesc("nydusd_up", "Whether the daemon is running.", nil, nil)
	ch <- prometheus.MustNewConstMetric(up, prometheus.GaugeValue, boolFloat(c.d.State() == StateRunning))
	if counts, _, ok := c.d.FUSERequests(); ok {
		req := prometheus.NewDesc("nydusd_fuse_requests_total",
			"FUSE requests answered, by opcode (forget: inodes forgotten).", []string{"opcode"}, nil)
		for op, n := range counts {
			ch <- prometheus.MustNewConstMetric(req, prometheus.CounterValue, float64(n), op)
		}
	}
	ms := c.d.Mounts()
	mps := make([]string, 0, len(ms))
	for mp := range ms {
		mps = append(mps, mp)
	}
	sort.Strings(mps)
	for _, mp := range mps {
		e := mountEmitter{ch: ch, mp: mp}
		e.fs(ms[mp])
		e.storage(ms[mp])
	}
}

// mountEmitter sends the series of one mount, labelled mountpoint.
type mountEmitter struct {
	ch chan<- prometheus.Metric
	mp string
}

func (e mountEmitter) desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, []string{"mountpoint"}, nil)
}

func (e mountEmitter) counter(name, help string, v float64) {
	e.ch <- prometheus.MustNewConstMetric(e.desc(name, help), prometheus.CounterValue, v, e.mp)
}

func (e mountEmitter) gauge(name, help string, v float64) {
	e.ch <- prometheus.MustNewConstMetric(e.desc(name, help), prometheus.GaugeValue, v, e.mp)
}

// histogram sends per-bucket counts (the last one unbounded, beyond
// bounds) as a histogram with cumulative buckets.
func (e mountEmitter) histogram(name, help string, bounds []float64, counts []uint64, sum float64) {
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, n := range counts {
		cum += n
		if i < len(bounds) {
			buckets[bounds[i]] = cum
		}
	}
	e.ch <- prometheus.MustNewConstHistogram(e.desc(name, help), cum, sum, buckets, e.mp)
}

// latency sends a storage latency histogram in seconds.
func (e mountEmitter) latency(name, help string, h storage.HistogramSnapshot) {
	bounds := make([]float64, len(h.BoundsMicros))
	for i, us := range h.BoundsMicros {
		bounds[i] = (time.Duration(us) * time.Microsecond).Seconds()
	}
	e.histogram(name, help, bounds, h.Buckets, float64(h.SumMicros)/1e6)
}

// fs sends the READ counters of the mount's filesystem (the quantities of
// GET /api/v1/metrics).
func (e mountEmitter) fs(m *Mount) {
	if m.FS == nil {
		return
	}
	stats := m.FS.Stats()
	files := stats.Files()
	var bytes, hits, errs, latencyUs uint64
	for _, f := range files {
		bytes += f.ReadBytes
		hits += f.ReadCount - f.ReadErrors
		errs += f.ReadErrors
		latencyUs += f.LatencyUs
	}
	size, latency := stats.Histograms()
	e.counter("nydusd_read_bytes_total", "Bytes returned by READs of the filesystem.", float64(bytes))
	e.counter("nydusd_read_hits_total", "Successful READs of the filesystem.", float64(hits))
	e.counter("nydusd_read_errors_total", "Failed READs of the filesystem.", float64(errs))
	e.gauge("nydusd_read_files", "Files read at least once.", float64(len(files)))
	// rafsfs's (upstream nydusd's) READ size and latency buckets; the last
	// of each is unbounded.
	e.histogram("nydusd_cumulative_read_block_bytes", "READs of the filesystem by size, in bytes.",
		[]float64{1 << 10, 4 << 10, 16 << 10, 64 << 10, 128 << 10, 512 << 10, 1024 << 10}, size[:], float64(bytes))
	e.histogram("nydusd_read_latency_seconds", "READs of the filesystem by latency, in seconds.",
		[]float64{1e-6, 20e-6, 50e-6, 100e-6, 500e-6, 1000e-6, 2000e-6}, latency[:], float64(latencyUs)/1e6)
}

// storage sends the cache, prefetch and backend counters of the mount's
// storage (the quantities of GET /api/v1/metrics/blobcache), from one
// snapshot.
func (e mountEmitter) storage(m *Mount) {
	if m.Storage == nil {
		return
	}
	s := m.Storage.Metrics().Snapshot()
	e.counter("nydusd_cache_partial_hits_total", "Chunk reads served partly from the cache.", float64(s.PartialHits))
	e.counter("nydusd_cache_whole_hits_total", "Chunk reads served entirely from the cache.", float64(s.WholeHits))
	e.counter("nydusd_cache_requests_total", "Chunk read requests to the cache.", float64(s.Total))
	e.gauge("nydusd_cache_entries", "Blobs opened in the cache.", float64(s.EntriesCount))
	e.gauge("nydusd_cache_data_all_ready", "Whether every blob of the mount is entirely cached (1) or not (0).", boolFloat(s.DataAllReady))
	e.gauge("nydusd_cache_buffered_backend_size", "Bytes fetched from the backend and not yet stored in the cache.", float64(s.BufferedBackendSize))

	e.counter("nydusd_cache_prefetch_data_bytes_total", "Bytes prefetched (compressed).", float64(s.PrefetchDataAmount))
	e.counter("nydusd_cache_prefetch_requests_total", "Merged backend reads issued by prefetch.", float64(s.PrefetchRequestsCount))
	e.gauge("nydusd_cache_prefetch_workers", "Prefetch workers running.", float64(s.PrefetchWorkers))
	e.counter("nydusd_cache_prefetch_unmerged_chunks_total", "Chunks fetched by prefetch.", float64(s.PrefetchUnmergedChunks))
	e.counter("nydusd_cache_prefetch_cumulative_time_seconds_total", "Cumulative time of prefetch runs, in seconds.",
		float64(s.PrefetchCumulativeTimeMillis)/1e3)
	begin := s.PrefetchBeginTimeSecs*1000 + s.PrefetchBeginTimeMillis
	end := s.PrefetchEndTimeSecs*1000 + s.PrefetchEndTimeMillis
	duration := 0.0
	if begin != 0 && end >= begin {
		duration = float64(end-begin) / 1e3
	}
	e.gauge("nydusd_cache_prefetch_duration_seconds", "Wall-clock time from the first prefetch start to the last prefetch end, in seconds.", duration)

	e.counter("nydusd_backend_reads_total", "Backend range reads.", float64(s.BackendReads))
	e.counter("nydusd_backend_read_bytes_total", "Bytes read from the backend.", float64(s.BackendBytes))
	e.counter("nydusd_backend_read_errors_total", "Failed backend reads.", float64(s.BackendErrors))
	e.counter("nydusd_cache_corrupt_fetched_chunks_total", "Chunks fetched from the backend that failed verification.", float64(s.CorruptFetched))
	e.counter("nydusd_cache_corrupt_cached_chunks_total", "Cached chunks that failed verification.", float64(s.CorruptCached))
	e.counter("nydusd_cache_write_errors_total", "Cache writes that failed.", float64(s.CacheWriteErrors))

	e.latency("nydusd_storage_read_duration_seconds", "Read requests to the storage layer, end to end, in seconds.", s.ReadLatency)
	e.latency("nydusd_cache_read_duration_seconds", "Chunk reads served from the cache, in seconds.", s.CachedReadLatency)
	e.latency("nydusd_backend_read_duration_seconds", "Backend range reads (one per merged range), in seconds.", s.BackendReadLatency)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
