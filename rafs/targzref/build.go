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
// metaOut. Without options it builds as upstream nydus-image does by
// default.
func Build(ctx context.Context, layer io.Reader, metaOut io.Writer, opts ...Option) (*Result, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
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
	if err := g.SetLimits(cfg.contexts); err != nil {
		return nil, fmt.Errorf("targzref: %w", err)
	}
	ch := newChunker(g, cfg.chunkSize)
	defer ch.close()
	t, err := source.FromTar(ctx, g, ch, cfg.source...)
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
		ChunkSize: cfg.chunkSize, ChunkCount: uint32(len(ch.unique)),
		Compressor: layout.CompressGzip, Digester: layout.DigestSHA256,
		Features:       zranFeatures | layout.BlobCapTarTOC,
		CompressedSize: uint64(g.Size()), UncompressedSize: ch.uoff,
	}
	entry.SetID(hex.EncodeToString(sum[:]))
	framed := cfg.toc || cfg.inlineBootstrap
	if framed {
		entry.Features |= layout.BlobHasTarHeader
	}
	if cfg.toc {
		entry.Features |= layout.BlobHasTOC
	}
	if cfg.inlineBootstrap {
		entry.Features |= layout.BlobInlinedFSMeta
	}
	mw := newMetaWriter(metaOut)
	if len(ch.unique) > 0 {
		if cfg.toc {
			entry.Features |= layout.BlobInlinedChunkDigest
		}
		chunks, used := ch.blobChunks(ctxs)
		ci, err := encodeCI(chunks, used)
		if err != nil {
			return nil, err
		}
		ctxs = used
		ext := uint64(len(ch.unique)) * layout.ChunkInfoV2Size
		if err := mw.writeMeta(&entry, ci, ext, uint64(len(ci))-ext, uint32(len(ctxs)), ch.digests(), framed, cfg.toc); err != nil {
			return nil, err
		}
	}
	t.ChunkSize = cfg.chunkSize
	t.Flags = layout.CompressGzip.SuperFlag() | layout.DigestSHA256.SuperFlag()
	if cfg.explicitUIDGID {
		t.Flags |= layout.FlagExplicitUIDGID
	}
	t.Blobs = []*layout.BlobEntry{&entry}
	if cfg.inlineBootstrap {
		boot, _, err := builder.EncodeBootstrap(t)
		if err != nil {
			return nil, err
		}
		if err := mw.writeBootstrap(boot, cfg.toc); err != nil {
			return nil, err
		}
	}
	if cfg.toc {
		if err := mw.writeTOC(&entry); err != nil {
			return nil, err
		}
	}
	if !cfg.inlineBootstrap {
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
