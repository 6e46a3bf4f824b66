package storage

import (
	"fmt"
	"strings"
)

// Cache types accepted in configuration.
const (
	CacheFile  = "filecache"
	CacheBlob  = "blobcache" // legacy name of filecache
	CacheDummy = "dummycache"
	CacheFS    = "fscache"
)

// CacheConfig is the v2 "cache" section of a nydusd configuration.
type CacheConfig struct {
	Type       string          `json:"type"`
	Compressed bool            `json:"compressed"`
	Validate   bool            `json:"validate"`
	Prefetch   PrefetchConfig  `json:"prefetch"`
	FileCache  FileCacheConfig `json:"filecache"`
	FSCache    *FSCacheConfig  `json:"fscache,omitempty"`
}

// FileCacheConfig is cache.filecache (v2) / device.cache.config (v1).
type FileCacheConfig struct {
	WorkDir                    string `json:"work_dir"`
	DisableIndexedMap          bool   `json:"disable_indexed_map"`
	EnableEncryption           bool   `json:"enable_encryption,omitempty"`
	EnableConvergentEncryption bool   `json:"enable_convergent_encryption,omitempty"`
	EncryptionKey              string `json:"encryption_key,omitempty"`
}

// FSCacheConfig is cache.fscache; fscache mode needs kernel CACHEFILES
// on-demand support and is not implemented.
type FSCacheConfig struct {
	WorkDir string `json:"work_dir"`
}

// PrefetchConfig is cache.prefetch / rafs.prefetch (v2).
type PrefetchConfig struct {
	Enable         bool   `json:"enable"`
	Threads        int    `json:"threads"`
	BatchSize      uint64 `json:"batch_size"`
	BandwidthLimit uint64 `json:"bandwidth_limit"` // bytes per second, 0 = unlimited
	PrefetchAll    bool   `json:"prefetch_all"`
	StreamPrefetch bool   `json:"stream_prefetch,omitempty"`
}

// Prefetch defaults (upstream's).
const (
	DefaultPrefetchThreads   = 8
	DefaultPrefetchBatchSize = 1 << 20
)

// DefaultPrefetchConfig returns the defaults; unmarshal JSON into a copy
// of it so absent keys keep them (prefetch_all defaults to true).
func DefaultPrefetchConfig() PrefetchConfig {
	return PrefetchConfig{Threads: DefaultPrefetchThreads, BatchSize: DefaultPrefetchBatchSize, PrefetchAll: true}
}

// Normalize fills zero sizes with defaults and checks ranges.
func (p PrefetchConfig) Normalize() (PrefetchConfig, error) {
	if p.Threads <= 0 {
		p.Threads = DefaultPrefetchThreads
	}
	if p.Threads > 1024 {
		return p, fmt.Errorf("storage: prefetch threads %d above 1024", p.Threads)
	}
	if p.BatchSize == 0 {
		p.BatchSize = DefaultPrefetchBatchSize
	}
	if p.BatchSize > MaxAmplify {
		return p, fmt.Errorf("storage: prefetch batch size %d above %d", p.BatchSize, MaxAmplify)
	}
	return p, nil
}

// ReadConfig holds the read-path settings of the v2 "rafs" section.
type ReadConfig struct {
	// BatchSize is rafs.batch_size (v1 amplify_io): amplify small reads
	// up to this many bytes; 0 disables.
	BatchSize uint64 `json:"batch_size"`
	// Validate is rafs.validate (v1 digest_validate).
	Validate bool `json:"validate"`
}

// DefaultReadConfig returns upstream's defaults (batch_size 1 MiB).
func DefaultReadConfig() ReadConfig { return ReadConfig{BatchSize: DefaultAmplify} }

// LegacyReadConfig holds the v1 top-level read settings. Unmarshal into
// DefaultLegacyReadConfig() so an absent amplify_io keeps its default.
type LegacyReadConfig struct {
	DigestValidate bool   `json:"digest_validate"`
	AmplifyIO      uint64 `json:"amplify_io"`
}

// DefaultLegacyReadConfig returns the v1 defaults (amplify_io 1 MiB).
func DefaultLegacyReadConfig() LegacyReadConfig { return LegacyReadConfig{AmplifyIO: DefaultAmplify} }

// V2 converts to the v2 rafs read settings.
func (r LegacyReadConfig) V2() ReadConfig {
	return ReadConfig{BatchSize: r.AmplifyIO, Validate: r.DigestValidate}
}

// LegacyCacheConfig is the v1 device.cache section.
type LegacyCacheConfig struct {
	Type       string          `json:"type"`
	Compressed bool            `json:"compressed"`
	Validate   bool            `json:"validate"`
	Config     FileCacheConfig `json:"config"`
}

// LegacyPrefetchConfig is the v1 fs_prefetch section.
type LegacyPrefetchConfig struct {
	Enable         bool   `json:"enable"`
	ThreadsCount   int    `json:"threads_count"`
	MergingSize    uint64 `json:"merging_size"`
	BandwidthRate  uint64 `json:"bandwidth_rate"`
	PrefetchAll    bool   `json:"prefetch_all"`
	StreamPrefetch bool   `json:"stream_prefetch,omitempty"`
}

// DefaultLegacyPrefetchConfig returns the v1 defaults.
func DefaultLegacyPrefetchConfig() LegacyPrefetchConfig {
	return LegacyPrefetchConfig{ThreadsCount: DefaultPrefetchThreads, MergingSize: DefaultPrefetchBatchSize, PrefetchAll: true}
}

// V2 converts fs_prefetch to the v2 prefetch section.
func (p LegacyPrefetchConfig) V2() PrefetchConfig {
	return PrefetchConfig{Enable: p.Enable, Threads: p.ThreadsCount, BatchSize: p.MergingSize,
		BandwidthLimit: p.BandwidthRate, PrefetchAll: p.PrefetchAll, StreamPrefetch: p.StreamPrefetch}
}

// V2 converts device.cache to the v2 cache section; prefetch is the
// converted fs_prefetch (v1 keeps it outside the cache section).
func (c LegacyCacheConfig) V2(prefetch PrefetchConfig) CacheConfig {
	return CacheConfig{Type: c.Type, Compressed: c.Compressed, Validate: c.Validate, Prefetch: prefetch, FileCache: c.Config}
}

// Kind returns the normalized cache type: CacheFile, or "" for no cache.
func (c CacheConfig) Kind() (string, error) {
	switch strings.ToLower(c.Type) {
	case CacheFile, CacheBlob:
		return CacheFile, nil
	case "", CacheDummy:
		return "", nil
	case CacheFS:
		return "", fmt.Errorf("storage: cache type %q needs kernel fscache on-demand support, which is not implemented", c.Type)
	}
	return "", fmt.Errorf("storage: unknown cache type %q", c.Type)
}

// WorkDir returns the filecache work directory ("." when unset, as upstream).
func (c CacheConfig) WorkDir() string {
	if c.FileCache.WorkDir == "" {
		return "."
	}
	return c.FileCache.WorkDir
}
