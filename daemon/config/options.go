package config

// What a configuration asks of the library: the options of the storage
// chain and of the prefetcher.

import (
	"errors"

	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/cache"
	"github.com/gonydus/nydus/storage/prefetch"
)

// SourceOptions turns the cache section and the rafs read settings into
// storage source options: the cache type, directory, compressed and
// validate flags, rafs.batch_size (amplify) and rafs.validate.
func (c *Config) SourceOptions() ([]storage.SourceOption, error) {
	kind, err := c.Cache.Kind()
	if err != nil {
		return nil, err
	}
	if c.Cache.FileCache.EnableEncryption {
		return nil, errors.New("encrypted cache files are not supported")
	}
	var opts []storage.SourceOption
	if kind == CacheFile {
		opts = append(opts, storage.WithCacheDir(c.Cache.WorkDir(),
			cache.WithCompressed(c.Cache.Compressed), cache.WithPersistentMap(!c.Cache.FileCache.DisableIndexedMap)))
	}
	opts = append(opts, storage.WithBlobOptions(storage.WithValidate(c.Cache.Validate || c.Rafs.Validate), storage.WithAmplify(c.Rafs.BatchSize)))
	return opts, nil
}

// PrefetcherOptions turns a prefetch section into prefetcher options
// (threads, batch_size, bandwidth_limit); a thread count or batch size
// of 0 keeps the prefetcher's default (as upstream); prefetch.New checks
// the ranges.
func (p Prefetch) PrefetcherOptions() []prefetch.Option {
	var opts []prefetch.Option
	if p.Threads > 0 {
		opts = append(opts, prefetch.WithThreads(p.Threads))
	}
	if p.BatchSize != 0 {
		opts = append(opts, prefetch.WithBatchSize(p.BatchSize))
	}
	return append(opts, prefetch.WithBandwidthLimit(p.BandwidthLimit))
}
