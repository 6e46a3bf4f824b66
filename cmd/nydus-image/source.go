package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gonydus/nydus/internal/progress"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/merge"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
)

// sourceFill returns the FillFunc for a --type and SOURCE; prog shows how
// much of the source has been read.
func sourceFill(typ, src, whiteout string, prefetch []string, prog *progress.Progress) (builder.FillFunc, error) {
	spec, err := merge.ParseWhiteoutSpec(whiteout)
	if err != nil {
		return nil, usagef("invalid --whiteout-spec %q (want oci, overlayfs or none)", whiteout)
	}
	opts := []source.Option{source.WithWhiteoutSpec(spec), source.WithPrefetch(prefetch)}
	switch typ {
	case "dir-rafs", "directory", "dir":
		st, err := os.Stat(src)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			return nil, usagef("--type %s needs a directory, %s is not one", typ, src)
		}
		return func(ctx context.Context, w builder.FileWriter) (_ *tree.Tree, err error) {
			t := prog.Start(filepath.Base(src), 0)
			defer endTracker(t, &err)
			if prog.Mode() != progress.Quiet {
				go func() { t.SetTotal(dirDataSize(src)) }()
			}
			return source.FromDir(ctx, src, trackedWriter{w, t}, opts...)
		}, nil
	case "tar-rafs", "targz-rafs":
		return func(ctx context.Context, w builder.FileWriter) (_ *tree.Tree, err error) {
			// Opened here, not earlier: a FIFO blocks until its writer arrives.
			f, err := os.Open(src)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			t := prog.Start(filepath.Base(src), regularSize(f))
			defer endTracker(t, &err)
			return source.FromTar(ctx, t.Reader(f), w, opts...)
		}, nil
	case "estargz-rafs", "estargz-ref", "estargztoc-ref", "stargz_index":
		return nil, usagef("--type %s is refused: eStargz layers (their TOC) are not read by this nydus-image; use tar-rafs, targz-rafs or targz-ref", typ)
	case "tar-tarfs":
		return nil, usagef("--type tar-tarfs is refused: tarfs images (the uncompressed tar as the blob) are not written; use tar-rafs")
	}
	return nil, usagef("invalid --type %q", typ)
}

// withParent builds a layer on top of a parent bootstrap: the new layer's
// tree is overlaid on the parent's and the result refers to the parent's
// blobs as well as the new one.
func withParent(fill builder.FillFunc, cfg buildConfig, parentPath, whiteout string) (builder.FillFunc, buildConfig, error) {
	if cfg.dict != nil {
		return nil, cfg, usagef("--parent-bootstrap together with --chunk-dict is not supported yet")
	}
	spec, err := merge.ParseWhiteoutSpec(whiteout)
	if err != nil {
		return nil, cfg, usagef("invalid --whiteout-spec %q", whiteout)
	}
	parent, err := loadImage(parentPath)
	if err != nil {
		return nil, cfg, fmt.Errorf("parent bootstrap: %w", err)
	}
	defer parent.Close()
	pt, err := parent.img.Tree()
	if err != nil {
		return nil, cfg, fmt.Errorf("parent bootstrap: %w", err)
	}
	if pt.ChunkSize != cfg.chunkSize {
		return nil, cfg, fmt.Errorf("%w: parent chunk size %#x differs from --chunk-size %#x", errInconsistent, pt.ChunkSize, cfg.chunkSize)
	}
	cfg.baseBlobs = pt.Blobs
	return func(ctx context.Context, w builder.FileWriter) (*tree.Tree, error) {
		layer, err := fill(ctx, w)
		if err != nil {
			return nil, err
		}
		merge.Apply(pt.Root, layer.Root, spec)
		pt.Prefetch = layer.Prefetch
		return pt, nil
	}, cfg, nil
}
