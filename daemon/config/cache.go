package config

// The cache and prefetch sections: v2's cache and rafs.prefetch, v1's
// device.cache and fs_prefetch (converted to v2).

import (
	"fmt"
	"strings"

	"github.com/gonydus/nydus/storage/prefetch"
)

// Cache types accepted in configuration.
const (
	CacheFile  = "filecache"
	CacheBlob  = "blobcache" // legacy name of filecache
	CacheDummy = "dummycache"
	CacheFS    = "fscache"
)

// Cache is the v2 "cache" section of a nydusd configuration.
type Cache struct {
	Type       string    `json:"type"`
	Compressed bool      `json:"compressed"`
	Validate   bool      `json:"validate"`
	Prefetch   Prefetch  `json:"prefetch"`
	FileCache  FileCache `json:"filecache"`
	FSCache    *FSCache  `json:"fscache,omitempty"`
}

// FileCache is cache.filecache (v2) / device.cache.config (v1).
type FileCache struct {
	WorkDir                    string `json:"work_dir"`
	DisableIndexedMap          bool   `json:"disable_indexed_map"`
	EnableEncryption           bool   `json:"enable_encryption,omitempty"`
	EnableConvergentEncryption bool   `json:"enable_convergent_encryption,omitempty"`
	EncryptionKey              string `json:"encryption_key,omitempty"`
}

// FSCache is cache.fscache; fscache mode needs kernel CACHEFILES
// on-demand support and is not implemented.
type FSCache struct {
	WorkDir string `json:"work_dir"`
}

// Prefetch is cache.prefetch / rafs.prefetch (v2).
type Prefetch struct {
	Enable         bool   `json:"enable"`
	Threads        int    `json:"threads"`
	BatchSize      uint64 `json:"batch_size"`
	BandwidthLimit uint64 `json:"bandwidth_limit"` // bytes per second, 0 = unlimited
	PrefetchAll    bool   `json:"prefetch_all"`
	StreamPrefetch bool   `json:"stream_prefetch,omitempty"`
}

// DefaultPrefetch returns the defaults; unmarshal JSON into a copy
// of it so absent keys keep them (prefetch_all defaults to true).
func DefaultPrefetch() Prefetch {
	return Prefetch{Threads: prefetch.DefaultThreads, BatchSize: prefetch.DefaultBatchSize, PrefetchAll: true}
}

// LegacyCache is the v1 device.cache section.
type LegacyCache struct {
	Type       string    `json:"type"`
	Compressed bool      `json:"compressed"`
	Validate   bool      `json:"validate"`
	Config     FileCache `json:"config"`
}

// LegacyPrefetch is the v1 fs_prefetch section.
type LegacyPrefetch struct {
	Enable         bool   `json:"enable"`
	ThreadsCount   int    `json:"threads_count"`
	MergingSize    uint64 `json:"merging_size"`
	BandwidthRate  uint64 `json:"bandwidth_rate"`
	PrefetchAll    bool   `json:"prefetch_all"`
	StreamPrefetch bool   `json:"stream_prefetch,omitempty"`
}

// DefaultLegacyPrefetch returns the v1 defaults.
func DefaultLegacyPrefetch() LegacyPrefetch {
	return LegacyPrefetch{ThreadsCount: prefetch.DefaultThreads, MergingSize: prefetch.DefaultBatchSize, PrefetchAll: true}
}

// V2 converts fs_prefetch to the v2 prefetch section.
func (p LegacyPrefetch) V2() Prefetch {
	return Prefetch{Enable: p.Enable, Threads: p.ThreadsCount, BatchSize: p.MergingSize,
		BandwidthLimit: p.BandwidthRate, PrefetchAll: p.PrefetchAll, StreamPrefetch: p.StreamPrefetch}
}

// V2 converts device.cache to the v2 cache section; pf is the converted
// fs_prefetch (v1 keeps it outside the cache section).
func (c LegacyCache) V2(pf Prefetch) Cache {
	return Cache{Type: c.Type, Compressed: c.Compressed, Validate: c.Validate, Prefetch: pf, FileCache: c.Config}
}

// Kind returns the normalized cache type: CacheFile, or "" for no cache.
func (c Cache) Kind() (string, error) {
	switch strings.ToLower(c.Type) {
	case CacheFile, CacheBlob:
		return CacheFile, nil
	case "", CacheDummy:
		return "", nil
	case CacheFS:
		return "", fmt.Errorf("cache type %q needs kernel fscache on-demand support, which is not implemented", c.Type)
	}
	return "", fmt.Errorf("unknown cache type %q", c.Type)
}

// WorkDir returns the filecache work directory ("." when unset, as upstream).
func (c Cache) WorkDir() string {
	if c.FileCache.WorkDir == "" {
		return "."
	}
	return c.FileCache.WorkDir
}
