package exporter

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/continuity"
	"github.com/moby/locker"
	"github.com/opencontainers/go-digest"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
)

// cacheVersion changes when the cached files' meaning changes.
const cacheVersion = "gonydus-exporter-cache-v2" // v2: meta.json records the bootstrap's digest

// Cache keeps converted layers in a directory, one subdirectory per layer
// and conversion options: blob (the RAFS data blob), boot (the layer's
// bootstrap, from which its tree is reloaded) and meta.json. Entries are
// written to a temporary directory and renamed into place, so a crash
// leaves no half entry (every file and the directory are synced before
// the rename), and a cache hit is verified against the digests recorded
// at build time before it is used; concurrent conversions of one layer
// wait for each other. Prune evicts entries unused for a while.
type Cache struct {
	dir   string
	log   *slog.Logger
	locks *locker.Locker
}

// NewCache opens (creating) the cache directory dir.
func NewCache(dir string, log *slog.Logger) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("nydus cache: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Cache{dir: dir, log: log, locks: locker.New()}, nil
}

// ConvertedLayer is a layer's RAFS blob in the cache.
type ConvertedLayer struct {
	DiffID digest.Digest `json:"diff_id"`
	// Digest is the blob's sha256 (its RAFS blob id); Size its length.
	Digest digest.Digest `json:"digest"`
	// BootDigest is the sha256 of the layer bootstrap file.
	BootDigest digest.Digest `json:"boot_digest"`
	Size       int64         `json:"size"`
	Chunks     int           `json:"chunks"`
	// Blob and Boot are the cached blob and the layer bootstrap.
	Blob string `json:"-"`
	Boot string `json:"-"`
	// Cached is set when the layer was found in the cache.
	Cached bool `json:"-"`
}

// Tree loads the layer's tree (its blob table holding the layer's blob),
// the input of the merge.
func (l *ConvertedLayer) Tree() (*tree.Tree, error) {
	b, err := os.ReadFile(l.Boot)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", l.DiffID, err)
	}
	img, err := rafs.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("layer %s: bootstrap: %w", l.DiffID, err)
	}
	t, err := img.Tree()
	if err != nil {
		return nil, fmt.Errorf("layer %s: bootstrap: %w", l.DiffID, err)
	}
	return t, nil
}

// key names the cache entry of a layer converted with o's blob options.
func key(diffID digest.Digest, o *Options) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%#x\n%q\n", cacheVersion, diffID, o.Compressor, o.ChunkSize, o.Prefetch)
	return hex.EncodeToString(h.Sum(nil))
}

// lock serialises work on one key; locks of keys nobody waits for are
// dropped.
func (c *Cache) lock(k string) func() {
	c.locks.Lock(k)
	return func() { _ = c.locks.Unlock(k) }
}

// Convert returns the converted layer of diffID, from the cache or by
// streaming open's uncompressed tar through rafs/source and rafs/builder
// into a blob. The tar must hash to diffID. advance, when not nil, is
// told how many tar bytes were read as the conversion goes.
func (c *Cache) Convert(ctx context.Context, diffID digest.Digest, open func(context.Context) (io.ReadCloser, error), o *Options, advance func(int64)) (*ConvertedLayer, error) {
	k := key(diffID, o)
	unlock := c.lock(k)
	defer unlock()
	dir := filepath.Join(c.dir, k)
	if l, err := c.load(dir); err == nil {
		l.Cached = true
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // last use, for whoever prunes the cache
		c.log.Info("layer cached", "diff_id", diffID, "blob", l.Digest, "blob_bytes", l.Size)
		return l, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("cache entry unreadable, converting again", "diff_id", diffID, "err", err)
		os.RemoveAll(dir)
	}
	tmp, err := os.MkdirTemp(c.dir, ".tmp-")
	if err != nil {
		return nil, fmt.Errorf("nydus cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := c.build(ctx, tmp, diffID, open, o, advance); err != nil {
		return nil, err
	}
	if err := syncDir(tmp); err != nil {
		return nil, fmt.Errorf("nydus cache: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("nydus cache: %w", err)
	}
	if err := syncDir(c.dir); err != nil {
		return nil, fmt.Errorf("nydus cache: %w", err)
	}
	return c.load(dir)
}

// syncDir makes the entries of directory dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fileDigest returns the sha256 of a file's content.
func fileDigest(name string) (digest.Digest, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return digest.SHA256.FromReader(f)
}

// load reads a cache entry.
func (c *Cache) load(dir string) (*ConvertedLayer, error) {
	b, err := os.ReadFile(filepath.Join(dir, "meta.json"))
	if err != nil {
		return nil, err
	}
	var l ConvertedLayer
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("nydus cache %s: %w", dir, err)
	}
	l.Blob, l.Boot = filepath.Join(dir, "blob"), filepath.Join(dir, "boot")
	st, err := os.Stat(l.Blob)
	if err != nil {
		return nil, fmt.Errorf("nydus cache %s: %w", dir, err)
	}
	if st.Size() != l.Size {
		return nil, fmt.Errorf("nydus cache %s: blob is %d bytes, want %d", dir, st.Size(), l.Size)
	}
	// Whatever sits in the cache is pushed as this layer: it must be what
	// was built (a disk error, or anyone with write access to the cache,
	// could have changed it since).
	for _, f := range []struct {
		name string
		want digest.Digest
	}{{l.Blob, l.Digest}, {l.Boot, l.BootDigest}} {
		got, err := fileDigest(f.name)
		if err != nil {
			return nil, fmt.Errorf("nydus cache %s: %w", dir, err)
		}
		if got != f.want {
			return nil, fmt.Errorf("nydus cache %s: %s hashes to %s, want %s", dir, filepath.Base(f.name), got, f.want)
		}
	}
	return &l, nil
}

// build converts one layer into dir.
func (c *Cache) build(ctx context.Context, dir string, diffID digest.Digest, open func(context.Context) (io.ReadCloser, error), o *Options, advance func(int64)) (*ConvertedLayer, error) {
	start := time.Now()
	rc, err := open(ctx)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", diffID, err)
	}
	defer rc.Close()
	tarSum := sha256.New()
	in := &countingReader{r: io.TeeReader(rc, tarSum), advance: advance}

	f, err := os.Create(filepath.Join(dir, "blob"))
	if err != nil {
		return nil, fmt.Errorf("nydus cache: %w", err)
	}
	defer f.Close()
	blobSum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, blobSum), 1<<20)
	log := c.log.With("diff_id", diffID)
	fill := func(ctx context.Context, w builder.FileWriter) (*tree.Tree, error) {
		return source.FromTar(ctx, in, w, source.WithLogger(log), source.WithPrefetch(o.Prefetch))
	}
	res, err := builder.Build(ctx, fill, bw, builder.WithCompressor(o.Compressor), builder.WithChunkSize(o.ChunkSize),
		builder.WithInlineBootstrap(true), builder.WithTOC(true))
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("layer %s: %w", diffID, err)
	}
	// The tar's end padding is left unread by the parser; it counts in the
	// diff id.
	if _, err := io.Copy(io.Discard, in); err != nil {
		return nil, fmt.Errorf("layer %s: %w", diffID, err)
	}
	if got := digest.NewDigestFromBytes(digest.SHA256, tarSum.Sum(nil)); got != diffID {
		return nil, fmt.Errorf("layer %s: its tar hashes to %s", diffID, got)
	}
	if got := hex.EncodeToString(blobSum.Sum(nil)); got != res.Blob.ID() {
		return nil, fmt.Errorf("layer %s: blob id %s differs from the blob's sha256 %s", diffID, res.Blob.ID(), got)
	}
	boot, _, err := builder.EncodeBootstrap(res.Tree)
	if err != nil {
		return nil, fmt.Errorf("layer %s: bootstrap: %w", diffID, err)
	}
	if err := continuity.AtomicWriteFile(filepath.Join(dir, "boot"), boot, 0o600); err != nil {
		return nil, fmt.Errorf("nydus cache: %w", err)
	}
	l := &ConvertedLayer{DiffID: diffID, Digest: digest.NewDigestFromEncoded(digest.SHA256, res.Blob.ID()),
		BootDigest: digest.FromBytes(boot), Size: int64(res.Blob.Size), Chunks: len(res.Blob.Chunks)}
	meta, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	if err := continuity.AtomicWriteFile(filepath.Join(dir, "meta.json"), meta, 0o600); err != nil {
		return nil, fmt.Errorf("nydus cache: %w", err)
	}
	el := time.Since(start)
	log.Info("layer converted", "blob", l.Digest, "tar_bytes", in.n, "blob_bytes", l.Size, "chunks", l.Chunks,
		"elapsed", el.Round(time.Millisecond))
	return l, nil
}

type countingReader struct {
	r       io.Reader
	n       int64
	advance func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.advance != nil && n > 0 {
		c.advance(int64(n))
	}
	return n, err
}
