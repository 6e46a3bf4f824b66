package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gonydus/nydus/internal/progress"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/merge"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/targzref"
)

// runTargzRef builds a targz-ref (zran) image of the gzip layer src: the
// RAFS blob goes to --blob (or --blob-dir, named by its sha256) and the
// bootstrap to --bootstrap, as upstream nydus-image does; the layer itself
// is the data blob, referenced by its sha256.
func (o *createOpts) runTargzRef(ctx context.Context, src string, cfg buildConfig, prefetch []string,
	prog *progress.Progress, endProgress func()) (err error) {
	switch {
	case *o.chunkDict != "":
		return usagef("--chunk-dict is not supported with --type targz-ref")
	case *o.parent != "":
		return usagef("--parent-bootstrap is not supported with --type targz-ref")
	case *o.prefetchPolicy == "blob":
		return usagef("conversion type targz-ref conflicts with '--prefetch-policy blob'")
	}
	if *o.compressor != "zstd" && *o.compressor != "gzip" {
		slog.Info("only gzip is supported for conversion type targz-ref, using gzip", "compressor", *o.compressor)
	}
	if *o.digester != "blake3" && *o.digester != "sha256" {
		slog.Info("only sha256 is supported for conversion type targz-ref, using sha256", "digester", *o.digester)
	}
	spec, err := merge.ParseWhiteoutSpec(*o.whiteout)
	if err != nil {
		return usagef("invalid --whiteout-spec %q (want oci, overlayfs or none)", *o.whiteout)
	}
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if st.IsDir() {
		return usagef("--type targz-ref needs a .tar.gz file, %s is a directory", src)
	}
	start := time.Now()
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := openBlobOutput(*o.blob, *o.blobDir)
	if err != nil {
		return err
	}
	t := prog.Start(filepath.Base(src), regularSize(in))
	res, err := targzref.Build(ctx, bufio.NewReaderSize(t.Reader(in), 1<<20), out,
		targzref.WithChunkSize(cfg.chunkSize), targzref.WithTOC(cfg.toc), targzref.WithInlineBootstrap(cfg.inlineBootstrap),
		targzref.WithExplicitUIDGID(cfg.explicitUIDGID), targzref.WithSourceOptions(source.WithWhiteoutSpec(spec), source.WithPrefetch(prefetch)))
	endTracker(t, &err)
	endProgress()
	if err != nil {
		out.abort()
		return err
	}
	blobPath, err := out.commit(res.MetaID)
	if err != nil {
		return err
	}
	bootPath := *o.bootstrap
	if !cfg.inlineBootstrap {
		if bootPath == "" {
			sum := sha256.Sum256(res.Bootstrap)
			bootPath = filepath.Join(*o.blobDir, hex.EncodeToString(sum[:]))
		}
		if err := writeFileAtomic(bootPath, res.Bootstrap, 0o644); err != nil {
			return err
		}
	}
	slog.Info("targz-ref image built", "rafs_blob", blobPath, "bootstrap", bootPath, "result", res.String(), "elapsed", time.Since(start))
	return writeOutputJSON(*o.outputJSON, outputJSON{
		Bootstrap: bootPath, Blobs: []string{res.Entry.ID()}, FSVersion: "6", Compressor: layout.CompressGzip.String(),
		consumed: time.Since(start),
	})
}

// withZran wraps src so chunks of zran blobs are read from their gzip
// layer (files[id] or blobDir/id) through the blob.meta of their RAFS blob
// (named by blob_meta_digest, or the inline-bootstrap blob the image was
// loaded from).
func (l *loadedImage) withZran(src rafs.ChunkSource, files map[string]io.ReaderAt, blobDir string) rafs.ChunkSource {
	zran := false
	for _, e := range l.img.Blobs() {
		zran = zran || e.Features&layout.BlobZran != 0
	}
	if !zran {
		return src
	}
	var mu sync.Mutex // readers may run concurrently (unpack, export)
	open := func(id string) (io.ReaderAt, int64, error) {
		mu.Lock()
		defer mu.Unlock()
		r, ok := files[id]
		if !ok {
			if blobDir == "" {
				return nil, 0, fmt.Errorf("blob %s: no blob file given (--blob or --blob-dir)", id)
			}
			f, err := os.Open(filepath.Join(blobDir, filepath.Base(id)))
			if err != nil {
				return nil, 0, err
			}
			l.close = append(l.close, f)
			files[id], r = f, f
		}
		size, err := readerSize(r)
		return r, size, err
	}
	checked := map[string]error{}
	return &targzref.Source{
		Base: src,
		// The layer must be the one the image was built from: its sha256
		// is the blob id (checked once per layer, on first use).
		Layer: func(e *layout.BlobEntry) (io.ReaderAt, error) {
			r, size, err := open(e.ID())
			if err != nil {
				return nil, err
			}
			mu.Lock()
			defer mu.Unlock()
			err, done := checked[e.ID()]
			if !done {
				h := sha256.New()
				if _, err = io.Copy(h, io.NewSectionReader(r, 0, size)); err == nil {
					if got := hex.EncodeToString(h.Sum(nil)); got != e.ID() {
						err = fmt.Errorf("zran blob %s: the layer given has sha256 %s: it is not this image's layer", e.ID(), got)
					}
				}
				checked[e.ID()] = err
			}
			return r, err
		},
		Meta: func(e *layout.BlobEntry) (io.ReaderAt, int64, error) {
			if id := targzref.MetaID(e); id != "" {
				return open(id)
			}
			if len(l.blobs) == 1 { // the RAFS blob carrying the inline bootstrap
				for _, r := range l.blobs {
					size, err := readerSize(r)
					return r, size, err
				}
			}
			return nil, 0, fmt.Errorf("zran blob %s: the bootstrap does not name its RAFS blob; check the RAFS blob itself (inline bootstrap)", e.ID())
		},
	}
}

func readerSize(r io.ReaderAt) (int64, error) {
	switch v := r.(type) {
	case interface{ Stat() (os.FileInfo, error) }:
		st, err := v.Stat()
		if err != nil {
			return 0, err
		}
		return st.Size(), nil
	case interface{ Size() int64 }:
		return v.Size(), nil
	}
	return 0, fmt.Errorf("cannot size blob reader %T", r)
}
