package targzref

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
	"github.com/gonydus/nydus/rafs/zran"
)

// ErrNotGzip reports a layer that is not a gzip stream (upstream would
// fall back to its tar-ref conversion, which is not implemented).
var ErrNotGzip = errors.New("targzref: the layer is not gzip-compressed")

// Config holds the options of a targz-ref build.
type Config struct {
	// ChunkSize is the image chunk size (default 1 MiB).
	ChunkSize uint32
	// TOC writes the chunk digests, tar headers and ToC into the RAFS blob
	// (--features blob-toc).
	TOC bool
	// InlineBootstrap embeds the bootstrap in the RAFS blob
	// (--blob-inline-meta); blob_meta_digest then stays zero.
	InlineBootstrap bool
	// ExplicitUIDGID records owners (cleared by --repeatable).
	ExplicitUIDGID bool
	// Contexts spaces the zran inflate contexts (zero: zran.DefaultLimits,
	// about half upstream's index size; zran.UpstreamLimits reproduces
	// upstream's spacing). Upstream nydusd reads either.
	Contexts zran.Limits
}

// DefaultConfig returns upstream nydus-image's defaults for targz-ref.
func DefaultConfig() Config {
	return Config{ChunkSize: layout.DefaultChunkSize, ExplicitUIDGID: true}
}

// Result describes a finished build.
type Result struct {
	// Entry is the blob-table entry of the gzip layer as the bootstrap
	// records it: the id is the layer's sha256.
	Entry layout.BlobEntry
	// Chunks are the unique chunks, by chunk-info index.
	Chunks []*layout.ChunkInfo
	// Contexts is the number of zran inflate contexts.
	Contexts int
	// MetaID and MetaSize are the sha256 and size of the RAFS blob.
	MetaID   string
	MetaSize uint64
	// Bootstrap is the standalone bootstrap.
	Bootstrap     []byte
	BootstrapInfo *builder.BootstrapInfo
	Tree          *tree.Tree
	// TarSize is the size of the uncompressed tar stream.
	TarSize int64
	// Relocated and Merged count contexts the generator repaired.
	Relocated, Merged int
}

// String summarises a result for logs.
func (r *Result) String() string {
	return fmt.Sprintf("gzip layer %s (%d bytes, tar %d bytes): %d chunks, %d zran contexts; RAFS blob %s (%d bytes); bootstrap %d bytes",
		r.Entry.ID(), r.Entry.CompressedSize, r.TarSize, len(r.Chunks), r.Contexts, r.MetaID, r.MetaSize, len(r.Bootstrap))
}

// Build reads the gzip layer once from layer and writes its RAFS blob to
// metaOut; opts configure the tar source (whiteouts, prefetch, logging).
func Build(ctx context.Context, layer io.Reader, metaOut io.Writer, cfg Config, opts ...source.Option) (*Result, error) {
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = layout.DefaultChunkSize
	}
	if !layout.ValidChunkSize(uint64(cfg.ChunkSize)) {
		return nil, fmt.Errorf("targzref: invalid chunk size %#x", cfg.ChunkSize)
	}
	if cfg.Contexts == (zran.Limits{}) {
		cfg.Contexts = zran.DefaultLimits()
	}
	if err := cfg.Contexts.Validate(); err != nil {
		return nil, fmt.Errorf("targzref: %w", err)
	}
	br := bufio.NewReaderSize(layer, 1<<20)
	if magic, err := br.Peek(2); err != nil || magic[0] != 0x1f || magic[1] != 0x8b {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("targzref: read layer: %w", err)
		}
		return nil, ErrNotGzip
	}
	g := zran.NewGenerator(br)
	defer g.Close()
	if err := g.SetLimits(cfg.Contexts); err != nil {
		return nil, fmt.Errorf("targzref: %w", err)
	}
	ch := newChunker(g, cfg.ChunkSize)
	defer ch.close()
	t, err := source.FromTar(ctx, g, ch, opts...)
	if err != nil {
		return nil, err
	}
	if err := ch.finish(); err != nil {
		return nil, err
	}
	ctxs, err := g.Finish()
	if err != nil {
		return nil, fmt.Errorf("targzref: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sum := g.Digest()
	entry := layout.BlobEntry{
		ChunkSize: cfg.ChunkSize, ChunkCount: uint32(len(ch.unique)),
		Compressor: layout.CompressGzip, Digester: layout.DigestSHA256,
		Features:       zranFeatures | layout.BlobCapTarTOC,
		CompressedSize: uint64(g.Size()), UncompressedSize: ch.uoff,
	}
	entry.SetID(hex.EncodeToString(sum[:]))
	framed := cfg.TOC || cfg.InlineBootstrap
	if framed {
		entry.Features |= layout.BlobHasTarHeader
	}
	if cfg.TOC {
		entry.Features |= layout.BlobHasTOC
	}
	if cfg.InlineBootstrap {
		entry.Features |= layout.BlobInlinedFSMeta
	}
	mw := newMetaWriter(metaOut)
	if len(ch.unique) > 0 {
		if cfg.TOC {
			entry.Features |= layout.BlobInlinedChunkDigest
		}
		chunks, used := ch.blobChunks(ctxs)
		ci, err := encodeCI(chunks, used)
		if err != nil {
			return nil, err
		}
		ctxs = used
		ext := uint64(len(ch.unique)) * layout.ChunkInfoV2Size
		if err := mw.writeMeta(&entry, ci, ext, uint64(len(ci))-ext, uint32(len(ctxs)), ch.digests(), framed, cfg.TOC); err != nil {
			return nil, err
		}
	}
	t.ChunkSize = cfg.ChunkSize
	t.Flags = layout.CompressGzip.SuperFlag() | layout.DigestSHA256.SuperFlag()
	if cfg.ExplicitUIDGID {
		t.Flags |= layout.FlagExplicitUIDGID
	}
	t.Blobs = []*layout.BlobEntry{&entry}
	if cfg.InlineBootstrap {
		boot, _, err := builder.EncodeBootstrap(t)
		if err != nil {
			return nil, err
		}
		if err := mw.writeBootstrap(boot, cfg.TOC); err != nil {
			return nil, err
		}
	}
	if cfg.TOC {
		if err := mw.writeTOC(&entry); err != nil {
			return nil, err
		}
	}
	if !cfg.InlineBootstrap {
		copy(entry.MetaDigest[:], mw.hash.Sum(nil))
		entry.MetaSize = mw.n
	}
	boot, info, err := builder.EncodeBootstrap(t)
	if err != nil {
		return nil, err
	}
	rel, mer := g.Repairs()
	return &Result{Entry: entry, Chunks: ch.unique, Contexts: len(ctxs), MetaID: mw.id(), MetaSize: mw.n,
		Bootstrap: boot, BootstrapInfo: info, Tree: t, TarSize: g.UncompressedSize(), Relocated: rel, Merged: mer}, nil
}
