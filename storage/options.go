package storage

import (
	"errors"
	"log/slog"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/targzref"
	"github.com/gonydus/nydus/storage/cache"
)

// Option configures a Blob.
type Option func(*blobConfig) error

type blobConfig struct {
	cache    *cache.BlobFile
	validate bool
	amplify  uint64
	maxSpan  uint64
	table    []*layout.ChunkInfo
	zranMeta *targzref.Meta
	gate     *Gate
	metrics  *Metrics
	log      *slog.Logger
}

// Defaults of the read path.
const (
	// DefaultAmplify is amplify_io / rafs.batch_size: small reads are
	// extended to the following chunks up to this many compressed bytes.
	DefaultAmplify = 1 << 20
	// DefaultMaxSpan bounds one merged backend read.
	DefaultMaxSpan = 1 << 20
	// DefaultFetchConcurrency bounds backend reads in flight.
	DefaultFetchConcurrency = 8
	// MaxAmplify is the largest accepted amplify size (as upstream).
	MaxAmplify = 0x10000000
)

func defaultBlobConfig() blobConfig {
	return blobConfig{amplify: DefaultAmplify, maxSpan: DefaultMaxSpan, log: slog.Default()}
}

// WithCache keeps chunks in c; without it every read goes to the backend
// (dummy cache), still verified.
func WithCache(c *cache.BlobFile) Option {
	return func(b *blobConfig) error { b.cache = c; return nil }
}

// WithValidate re-verifies chunks read from the cache (cache.validate /
// digest_validate). Backend data is always verified.
func WithValidate(on bool) Option {
	return func(b *blobConfig) error { b.validate = on; return nil }
}

// WithAmplify sets amplify_io: reads smaller than n compressed bytes are
// extended to following uncached chunks, up to n. 0 disables it.
func WithAmplify(n uint64) Option {
	return func(b *blobConfig) error {
		if n > MaxAmplify {
			return errors.New("storage: amplify size above 256 MiB")
		}
		b.amplify = n
		return nil
	}
}

// WithMaxSpan bounds one merged backend read of requested chunks (at least
// one chunk is always read whole).
func WithMaxSpan(n uint64) Option {
	return func(b *blobConfig) error {
		if n > MaxAmplify {
			return errors.New("storage: merge size above 256 MiB")
		}
		b.maxSpan = n
		return nil
	}
}

// WithChunkTable gives the blob's chunks (from the bootstrap chunk table),
// which amplification and whole-blob prefetch need to know what follows a
// chunk. Without it reads are never amplified.
func WithChunkTable(chunks []*layout.ChunkInfo) Option {
	return func(b *blobConfig) error { b.table = chunks; return nil }
}

// WithGate shares a fetch gate (concurrency bound and user/prefetch
// priority) between blobs. By default each blob has its own gate of
// DefaultFetchConcurrency slots.
func WithGate(g *Gate) Option {
	return func(b *blobConfig) error {
		if g == nil {
			return errors.New("storage: nil gate")
		}
		b.gate = g
		return nil
	}
}

// WithMetrics records into m (shared by the blobs of one mount).
func WithMetrics(m *Metrics) Option {
	return func(b *blobConfig) error {
		if m == nil {
			return errors.New("storage: nil metrics")
		}
		b.metrics = m
		return nil
	}
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(b *blobConfig) error {
		if l == nil {
			return errors.New("storage: nil logger")
		}
		b.log = l
		return nil
	}
}
