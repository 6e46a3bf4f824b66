package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log/slog"
	"time"

	"github.com/gonydus/nydus/rafs/layout"
)

// Option configures a BlobFile.
type Option func(*config) error

type config struct {
	compressed   bool
	persistMap   bool
	syncInterval time.Duration
	syncBytes    int64
	log          *slog.Logger
	table        *[32]byte // chunk table digest the files are bound to
	// crashAt, set only by tests, is called at named points of Open where
	// a crash must leave the files consistent.
	crashAt func(point string)
}

func (c config) crashPoint(point string) {
	if c.crashAt != nil {
		c.crashAt(point)
	}
}

func defaultConfig() config {
	return config{
		persistMap:   true,
		syncInterval: DefaultSyncInterval,
		syncBytes:    DefaultSyncBytes,
		log:          slog.Default(),
	}
}

// Defaults of the durability batching.
const (
	DefaultSyncInterval = 50 * time.Millisecond
	DefaultSyncBytes    = 32 << 20
)

// WithCompressed stores compressed chunk bytes in <blob_id>.blob.raw at
// their compressed offsets instead of uncompressed bytes in .blob.data
// (cache "compressed": true).
func WithCompressed(on bool) Option {
	return func(c *config) error { c.compressed = on; return nil }
}

// WithPersistentMap sets whether the readiness bitmap is kept on disk; false
// keeps it in memory only (filecache "disable_indexed_map"): cached data is
// not reused after a restart.
func WithPersistentMap(on bool) Option {
	return func(c *config) error { c.persistMap = on; return nil }
}

// WithSync sets how writes are made durable before chunks are marked
// ready: the data file is fdatasync'ed at most every interval, or as soon
// as bytes are pending. interval 0 syncs inside every Put.
func WithSync(interval time.Duration, bytes int64) Option {
	return func(c *config) error {
		if interval < 0 || bytes < 0 {
			return errors.New("cache: negative sync interval or size")
		}
		c.syncInterval, c.syncBytes = interval, bytes
		return nil
	}
}

// WithLogger sets the logger for cache warnings (rebuilt maps, write errors).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("cache: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithTable binds the cache files to the chunk table whose digest is
// table (see TableDigest): chunks marked ready for another table are
// never served. Two images that name one blob id with different chunk
// tables (one of them lying) then cache apart, in <blob_id>.<table>.*
// files, instead of serving each other's bytes unverified. Without it the
// files are keyed by blob id alone, as upstream's are.
func WithTable(table [32]byte) Option {
	return func(c *config) error {
		c.table = &table
		return nil
	}
}

// TableDigest is the digest WithTable takes: sha256 over every chunk's
// index, offsets, sizes, flags and digest, in the order given.
func TableDigest(chunks []*layout.ChunkInfo) [32]byte {
	h := sha256.New()
	var b [36]byte
	for _, c := range chunks {
		binary.LittleEndian.PutUint32(b[0:], c.Index)
		binary.LittleEndian.PutUint64(b[4:], c.CompressedOffset)
		binary.LittleEndian.PutUint32(b[12:], c.CompressedSize)
		binary.LittleEndian.PutUint64(b[16:], c.UncompressedOffset)
		binary.LittleEndian.PutUint32(b[24:], c.UncompressedSize)
		binary.LittleEndian.PutUint32(b[28:], uint32(c.Flags))
		binary.LittleEndian.PutUint32(b[32:], c.CRC32)
		h.Write(b[:])
		h.Write(c.Digest[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
