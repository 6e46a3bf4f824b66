package builder

import (
	"context"
	"fmt"
	"io"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// FileWriter receives file data while a source fills a tree. BlobWriter
// implements it.
type FileWriter interface {
	WriteFile(r io.Reader, size int64) ([]*layout.ChunkInfo, error)
}

// FillFunc fills a tree from some source (a directory, a tar stream),
// sending file data to w. It returns the tree's root and prefetch paths.
type FillFunc func(ctx context.Context, w FileWriter) (*tree.Tree, error)

// Config holds the options of one image build.
type Config struct {
	Compressor layout.Compressor
	Digester   layout.Digester
	ChunkSize  uint32
	Workers    int
	// InlineBootstrap embeds the bootstrap in the blob (--blob-inline-meta).
	InlineBootstrap bool
	// TOC writes the blob ToC and chunk digests (--features blob-toc).
	TOC bool
	// ExplicitUIDGID records owners (cleared by --repeatable).
	ExplicitUIDGID bool
	// BaseBlobs are blobs existing chunks may point to (chunk dictionary or
	// parent layers); the new blob gets the next index.
	BaseBlobs []*layout.BlobEntry
	// Dict finds existing chunks to reference instead of storing again.
	Dict ChunkDict
}

// DefaultConfig returns upstream nydus-image's defaults.
func DefaultConfig() Config {
	return Config{
		Compressor:     layout.CompressZstd,
		Digester:       layout.DigestBlake3,
		ChunkSize:      layout.DefaultChunkSize,
		TOC:            true,
		ExplicitUIDGID: true,
	}
}

// Result describes a finished build.
type Result struct {
	// Blob is the new data blob; its Entry.ID() is the blob id.
	Blob *BlobResult
	// HasData reports whether the new blob holds any chunk.
	HasData bool
	// Bootstrap is the standalone bootstrap (with the real blob id).
	Bootstrap     []byte
	BootstrapInfo *BootstrapInfo
	Tree          *tree.Tree
}

// Build runs fill against a new blob written to blobOut and lays out the
// bootstrap. blobOut receives the blob strictly sequentially.
func Build(ctx context.Context, fill FillFunc, blobOut io.Writer, cfg Config) (*Result, error) {
	opts := []BlobOption{WithCompressor(cfg.Compressor), WithDigester(cfg.Digester), WithChunkSize(cfg.ChunkSize),
		WithBlobIndex(uint32(len(cfg.BaseBlobs))), WithTOC(cfg.TOC)}
	if cfg.Workers > 0 {
		opts = append(opts, WithWorkers(cfg.Workers))
	}
	if cfg.Dict != nil {
		opts = append(opts, WithChunkDict(cfg.Dict))
	}
	bw, err := NewBlobWriter(blobOut, opts...)
	if err != nil {
		return nil, err
	}
	t, err := fill(ctx, bw)
	if err != nil {
		bw.Abort()
		return nil, err
	}
	t.ChunkSize = cfg.ChunkSize
	t.Flags = cfg.Compressor.SuperFlag() | cfg.Digester.SuperFlag()
	if cfg.ExplicitUIDGID {
		t.Flags |= layout.FlagExplicitUIDGID
	}
	t.Blobs = append(append([]*layout.BlobEntry(nil), cfg.BaseBlobs...), nil)
	newIndex := len(cfg.BaseBlobs)
	var inline InlineBootstrap
	if cfg.InlineBootstrap {
		inline = func(e *layout.BlobEntry) ([]byte, error) {
			t.Blobs[newIndex] = e
			b, _, err := EncodeBootstrap(t)
			return b, err
		}
	}
	res, err := bw.Finish(inline)
	if err != nil {
		return nil, err
	}
	t.Blobs[newIndex] = &res.Entry
	boot, info, err := EncodeBootstrap(t)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &Result{Blob: res, HasData: len(res.Chunks) > 0, Bootstrap: boot, BootstrapInfo: info, Tree: t}, nil
}

// String summarises a result for logs.
func (r *Result) String() string {
	return fmt.Sprintf("blob %s (%d bytes, %d chunks), bootstrap %d bytes, %d inodes",
		r.Blob.ID(), r.Blob.Size, len(r.Blob.Chunks), len(r.Bootstrap), r.BootstrapInfo.Inodes)
}
