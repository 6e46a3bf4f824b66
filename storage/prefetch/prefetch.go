package prefetch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
)

// Job asks for chunks of one blob to be prefetched. With Chunks nil the
// whole blob is prefetched in blob order (the blob needs its chunk table).
type Job struct {
	Blob   *storage.Blob
	Chunks []*layout.ChunkInfo
}

// Defaults of a Prefetcher (upstream's).
const (
	DefaultThreads   = 8
	DefaultBatchSize = 1 << 20
	// MaxThreads bounds WithThreads.
	MaxThreads = 1024
)

// Option configures a Prefetcher.
type Option func(*config) error

// WithThreads sets how many workers fetch at once (1..MaxThreads,
// default DefaultThreads).
func WithThreads(n int) Option {
	return func(c *config) error {
		if n < 1 || n > MaxThreads {
			return fmt.Errorf("prefetch: threads %d not in 1..%d", n, MaxThreads)
		}
		c.threads = n
		return nil
	}
}

// WithBatchSize sets the largest backend read a worker makes, in bytes
// (1..storage.MaxAmplify, default DefaultBatchSize).
func WithBatchSize(n uint64) Option {
	return func(c *config) error {
		if n < 1 || n > storage.MaxAmplify {
			return fmt.Errorf("prefetch: batch size %d not in 1..%d", n, storage.MaxAmplify)
		}
		c.batchSize = n
		return nil
	}
}

// WithBandwidthLimit caps the bytes fetched per second (0, the default,
// is unlimited).
func WithBandwidthLimit(bytesPerSecond uint64) Option {
	return func(c *config) error {
		c.bandwidthLimit = bytesPerSecond
		return nil
	}
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("prefetch: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithMetrics records prefetch progress into m (normally the Source's).
func WithMetrics(m *storage.Metrics) Option {
	return func(c *config) error {
		if m == nil {
			return errors.New("prefetch: nil metrics")
		}
		c.metrics = m
		return nil
	}
}

// WithBackoff sets how long a worker sleeps before looking again when user
// reads are fetching (default 2ms).
func WithBackoff(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return errors.New("prefetch: backoff must be positive")
		}
		c.backoff = d
		return nil
	}
}

// Prefetcher runs prefetch jobs: a number of workers, each fetching
// batches of chunks, within a bandwidth limit.
type Prefetcher struct {
	cfg config
	bw  *bandwidth
}

type config struct {
	threads        int
	batchSize      uint64
	bandwidthLimit uint64
	metrics        *storage.Metrics
	log            *slog.Logger
	backoff        time.Duration
}

// New returns a prefetcher configured by opts.
func New(opts ...Option) (*Prefetcher, error) {
	c := config{threads: DefaultThreads, batchSize: DefaultBatchSize, log: slog.Default(), backoff: 2 * time.Millisecond}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	return &Prefetcher{cfg: c, bw: newBandwidth(c.bandwidthLimit)}, nil
}

// Progress counts the work of a Run.
type Progress struct {
	Batches     int64  // batches planned
	Done        int64  // batches finished
	Requests    int64  // backend reads
	Chunks      int64  // chunks fetched
	Bytes       uint64 // compressed bytes fetched
	Errors      int64  // batches that failed
	UserYields  int64  // times a worker backed off for user reads
	Outstanding int64  // batches not yet finished
}

// Run is a prefetch in progress.
type Run struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error

	batches, finished, requests, chunks, errs, yields atomic.Int64
	bytes                                             atomic.Uint64
}

// Start begins prefetching jobs in the background. Cancel ctx or call
// Cancel to stop it.
func (p *Prefetcher) Start(ctx context.Context, jobs []Job) *Run {
	ctx, cancel := context.WithCancel(ctx)
	r := &Run{cancel: cancel, done: make(chan struct{})}
	var batches []batch
	var errs []error
	for _, j := range jobs {
		b, err := p.plan(j)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		batches = append(batches, b...)
	}
	r.batches.Store(int64(len(batches)))
	queue := make(chan batch)
	workers := min(p.cfg.threads, max(len(batches), 1))
	start := time.Now()
	var first *storage.Blob
	if len(jobs) > 0 {
		first = jobs[0].Blob
	}
	m := p.metricsOf(first)
	if m != nil {
		m.PrefetchStarted(workers)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range workers {
		wg.Go(func() {
			for b := range queue {
				if err := p.fetch(ctx, r, b); err != nil && ctx.Err() == nil {
					r.errs.Add(1)
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					p.cfg.log.Warn("prefetch: batch failed", "blob", b.blob.ID(), "chunks", len(b.chunks), "err", err)
				}
				r.finished.Add(1)
			}
		})
	}
	go func() {
		defer close(r.done)
	feed:
		for _, b := range batches {
			select {
			case queue <- b:
			case <-ctx.Done():
				break feed
			}
		}
		close(queue)
		wg.Wait()
		if m != nil {
			m.PrefetchFinished(workers, time.Since(start))
		}
		if err := ctx.Err(); err != nil && r.finished.Load() < r.batches.Load() {
			errs = append(errs, err)
		}
		r.err = errors.Join(errs...)
		cancel()
	}()
	return r
}

// Prefetch runs jobs to completion.
func (p *Prefetcher) Prefetch(ctx context.Context, jobs []Job) error {
	return p.Start(ctx, jobs).Wait()
}

// metricsOf returns the metrics to record into: the prefetcher's, else
// the blob's own.
func (p *Prefetcher) metricsOf(b *storage.Blob) *storage.Metrics {
	if p.cfg.metrics != nil || b == nil {
		return p.cfg.metrics
	}
	return b.Metrics()
}

// plan cuts a job into batches.
func (p *Prefetcher) plan(j Job) ([]batch, error) {
	if j.Blob == nil {
		return nil, errors.New("prefetch: job without a blob")
	}
	if j.Chunks == nil {
		table := j.Blob.Table()
		if len(table) == 0 && j.Blob.Entry().ChunkCount > 0 {
			return nil, fmt.Errorf("prefetch: blob %s: whole-blob prefetch needs the blob's chunk table", j.Blob.ID())
		}
		return split(j.Blob, table, p.cfg.batchSize, 0), nil
	}
	return split(j.Blob, j.Chunks, ListBatchBytes, ListBatchChunks), nil
}

// fetch runs one batch: yield to user reads, pay bandwidth, then fetch.
func (p *Prefetcher) fetch(ctx context.Context, r *Run, b batch) error {
	var todo []*layout.ChunkInfo
	var bytes uint64
	for _, c := range b.chunks {
		if !b.blob.Ready(c) {
			todo = append(todo, c)
			bytes += uint64(c.CompressedSize)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	gate := b.blob.Gate()
	for gate.UserBusy() {
		r.yields.Add(1)
		if err := sleep(ctx, p.cfg.backoff); err != nil {
			return err
		}
	}
	if err := p.bw.wait(ctx, bytes); err != nil {
		return err
	}
	res, err := b.blob.Prefetch(ctx, todo, p.cfg.batchSize)
	r.requests.Add(int64(res.Requests))
	r.chunks.Add(int64(res.Chunks))
	r.bytes.Add(res.Bytes)
	p.metricsOf(b.blob).PrefetchFetched(res.Requests, res.Chunks, res.Bytes)
	return err
}

// Wait blocks until the run ends and returns its errors (joined).
func (r *Run) Wait() error {
	<-r.done
	return r.err
}

// Done is closed when the run ends.
func (r *Run) Done() <-chan struct{} { return r.done }

// Cancel stops the run; Wait then returns context.Canceled unless all
// work had finished.
func (r *Run) Cancel() { r.cancel() }

// Progress returns the current counters.
func (r *Run) Progress() Progress {
	p := Progress{
		Batches: r.batches.Load(), Done: r.finished.Load(), Requests: r.requests.Load(),
		Chunks: r.chunks.Load(), Bytes: r.bytes.Load(), Errors: r.errs.Load(), UserYields: r.yields.Load(),
	}
	p.Outstanding = p.Batches - p.Done
	return p
}
