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

// WithBaseBlobs names the blobs existing chunks may point to (a chunk
// dictionary's or the parent layers'); the new blob gets the next index
// in the image's blob table.
func WithBaseBlobs(blobs []*layout.BlobEntry) Option {
	return func(c *config) error {
		if len(blobs) >= layout.MaxBlobs-1 {
			return fmt.Errorf("builder: %d base blobs leave no index for the new blob", len(blobs))
		}
		c.baseBlobs = blobs
		c.blobIndex = uint32(len(blobs))
		return nil
	}
}

// WithInlineBootstrap embeds the bootstrap in the blob
// (nydus-image --blob-inline-meta).
func WithInlineBootstrap(on bool) Option {
	return func(c *config) error { c.inlineBootstrap = on; return nil }
}

// WithExplicitUIDGID records owners in the image (on by default;
// nydus-image --repeatable turns it off).
func WithExplicitUIDGID(on bool) Option {
	return func(c *config) error { c.explicitUIDGID = on; return nil }
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
// bootstrap. blobOut receives the blob strictly sequentially. Without
// options it builds as upstream nydus-image does by default (zstd, blake3,
// 1 MiB chunks, blob ToC, owners recorded).
func Build(ctx context.Context, fill FillFunc, blobOut io.Writer, opts ...Option) (*Result, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if int(cfg.blobIndex) != len(cfg.baseBlobs) {
		return nil, fmt.Errorf("builder: Build numbers the new blob after its base blobs (WithBaseBlobs), not by WithBlobIndex(%d)", cfg.blobIndex)
	}
	bw, err := newBlobWriter(blobOut, cfg)
	if err != nil {
		return nil, err
	}
	t, err := fill(ctx, bw)
	if err != nil {
		bw.Abort()
		return nil, err
	}
	t.ChunkSize = cfg.chunkSize
	t.Flags = cfg.compressor.SuperFlag() | cfg.digester.SuperFlag()
	if cfg.explicitUIDGID {
		t.Flags |= layout.FlagExplicitUIDGID
	}
	t.Blobs = append(append([]*layout.BlobEntry(nil), cfg.baseBlobs...), nil)
	newIndex := len(cfg.baseBlobs)
	var inline InlineBootstrap
	if cfg.inlineBootstrap {
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
