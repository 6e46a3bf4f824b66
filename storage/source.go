package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/targzref"
	"github.com/gonydus/nydus/storage/cache"
)

// Source is a rafs.ChunkSource over the blobs of one image: it creates a
// Blob per blob id on first use, opening the backend reader and the cache
// files then, and shares one fetch gate and one Metrics among them.
type Source struct {
	open OpenFunc
	cfg  sourceConfig

	mu     sync.Mutex
	blobs  map[string]*sourceBlob
	closed bool
}

type sourceBlob struct {
	ready chan struct{}
	blob  *Blob
	err   error
}

var _ rafs.ChunkSource = (*Source)(nil)

// SourceOption configures a Source.
type SourceOption func(*sourceConfig) error

type sourceConfig struct {
	cacheDir  string
	cacheOpts []cache.Option
	blobOpts  []Option
	tables    func(*layout.BlobEntry) []*layout.ChunkInfo
	zranMeta  func(context.Context, *layout.BlobEntry) (*targzref.Meta, error)
	gate      *Gate
	metrics   *Metrics
	log       *slog.Logger
}

// WithCacheDir caches chunks in dir (filecache); without it there is no
// cache (dummycache).
func WithCacheDir(dir string, opts ...cache.Option) SourceOption {
	return func(c *sourceConfig) error {
		if dir == "" {
			return errors.New("storage: empty cache directory")
		}
		c.cacheDir, c.cacheOpts = dir, opts
		return nil
	}
}

// WithBlobOptions applies opts to every Blob the source creates.
func WithBlobOptions(opts ...Option) SourceOption {
	return func(c *sourceConfig) error { c.blobOpts = append(c.blobOpts, opts...); return nil }
}

// WithChunkTables supplies each blob's chunk list (from the bootstrap
// chunk table), enabling amplification and whole-blob prefetch.
func WithChunkTables(f func(*layout.BlobEntry) []*layout.ChunkInfo) SourceOption {
	return func(c *sourceConfig) error { c.tables = f; return nil }
}

// WithConcurrency bounds the backend reads in flight across all blobs.
func WithConcurrency(n int) SourceOption {
	return func(c *sourceConfig) error {
		if n <= 0 {
			return fmt.Errorf("storage: fetch concurrency %d", n)
		}
		c.gate = NewGate(n)
		return nil
	}
}

// WithSourceMetrics records into m.
func WithSourceMetrics(m *Metrics) SourceOption {
	return func(c *sourceConfig) error {
		if m == nil {
			return errors.New("storage: nil metrics")
		}
		c.metrics = m
		return nil
	}
}

// WithSourceLogger sets the logger of the source and its blobs.
func WithSourceLogger(l *slog.Logger) SourceOption {
	return func(c *sourceConfig) error {
		if l == nil {
			return errors.New("storage: nil logger")
		}
		c.log = l
		return nil
	}
}

// NewSource returns a source opening blob readers with open.
func NewSource(open OpenFunc, opts ...SourceOption) (*Source, error) {
	if open == nil {
		return nil, errors.New("storage: nil open function")
	}
	cfg := sourceConfig{log: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.gate == nil {
		cfg.gate = NewGate(DefaultFetchConcurrency)
	}
	if cfg.metrics == nil {
		cfg.metrics = NewMetrics("", cfg.cacheDir)
	}
	return &Source{open: open, cfg: cfg, blobs: map[string]*sourceBlob{}}, nil
}

// Metrics returns the metrics shared by the source's blobs.
func (s *Source) Metrics() *Metrics { return s.cfg.metrics }

// Gate returns the fetch gate shared by the source's blobs.
func (s *Source) Gate() *Gate { return s.cfg.gate }

// ReadChunk implements rafs.ChunkSource.
func (s *Source) ReadChunk(ctx context.Context, blob *layout.BlobEntry, c *layout.ChunkInfo) ([]byte, error) {
	b, err := s.Blob(ctx, blob)
	if err != nil {
		return nil, err
	}
	return b.ReadChunk(ctx, c, nil)
}

// Blob returns the Blob of entry, creating it on first use.
func (s *Source) Blob(ctx context.Context, entry *layout.BlobEntry) (*Blob, error) {
	id := entry.ID()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	sb, ok := s.blobs[id]
	if !ok {
		sb = &sourceBlob{ready: make(chan struct{})}
		s.blobs[id] = sb
	}
	s.mu.Unlock()
	if !ok {
		sb.blob, sb.err = s.newBlob(ctx, entry)
		if sb.err != nil {
			s.mu.Lock()
			delete(s.blobs, id) // retry on the next read
			s.mu.Unlock()
		}
		close(sb.ready)
	}
	select {
	case <-sb.ready:
		return sb.blob, sb.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Source) newBlob(ctx context.Context, entry *layout.BlobEntry) (*Blob, error) {
	r, err := s.open(ctx, entry.ID())
	if err != nil {
		return nil, fmt.Errorf("storage: open blob %s: %w", entry.ID(), err)
	}
	opts := []Option{WithGate(s.cfg.gate), WithMetrics(s.cfg.metrics), WithLogger(s.cfg.log)}
	var table []*layout.ChunkInfo
	if s.cfg.tables != nil {
		table = s.cfg.tables(entry)
		opts = append(opts, WithChunkTable(table))
	}
	if entry.Features&layout.BlobZran != 0 {
		m, err := s.zranMeta(ctx, entry)
		if err != nil {
			return nil, err
		}
		opts = append(opts, WithZranMeta(m))
	}
	var cf *cache.BlobFile
	if s.cfg.cacheDir != "" {
		copts := append([]cache.Option{cache.WithLogger(s.cfg.log)}, s.cfg.cacheOpts...)
		if len(table) > 0 {
			// Bound to this image's chunk table: another image naming the
			// same blob id with another table cannot poison this one.
			copts = append(copts, cache.WithTable(cache.TableDigest(table)))
		}
		cf, err = cache.Open(s.cfg.cacheDir, entry, copts...)
		if err != nil {
			return nil, err
		}
		opts = append(opts, WithCache(cf))
	}
	b, err := NewBlob(entry, r, append(opts, s.cfg.blobOpts...)...)
	if err != nil && cf != nil {
		cf.Close()
	}
	return b, err
}

// Blobs returns the blobs created so far.
func (s *Source) Blobs() []*Blob {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Blob
	for _, sb := range s.blobs {
		select {
		case <-sb.ready:
			if sb.blob != nil {
				out = append(out, sb.blob)
			}
		default:
		}
	}
	return out
}

// Close closes every blob (flushing caches).
func (s *Source) Close() error {
	s.mu.Lock()
	s.closed = true
	blobs := s.blobs
	s.blobs = map[string]*sourceBlob{}
	s.mu.Unlock()
	var errs []error
	for _, sb := range blobs {
		<-sb.ready
		if sb.blob != nil {
			errs = append(errs, sb.blob.Close())
		}
	}
	return errors.Join(errs...)
}
