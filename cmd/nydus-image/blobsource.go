package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/targzref"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/backend"
)

// blobOpts are the ways check, unpack and export learn where an image's
// blobs are: local files (--blob; --blob-dir, spelt --localfs-dir by
// export) or a storage backend (-C/--config with a nydusd configuration
// or a blob cache entry, or --backend-type with --backend-config or
// --backend-config-file, as upstream's unpack and compact take them).
type blobOpts struct {
	blob, blobDir, config                         *string
	backendType, backendConfig, backendConfigFile *string
	dirFlag                                       string // the directory flag's name, for messages
}

// addBlobOpts registers the blob options; dirNames name the directory
// flag (first is the long name shown in messages).
func addBlobOpts(fs *flag.FlagSet, dirUsage string, dirNames ...string) *blobOpts {
	return &blobOpts{
		blob:    cli.String(fs, "", "Blob file holding the image's data", "blob", "b"),
		blobDir: cli.String(fs, "", dirUsage, dirNames...),
		config: cli.String(fs, "", "Storage backend configuration file: a nydusd configuration (v2 or v1 JSON) "+
			"or a blob cache entry with config_v2 (its metadata_path is the bootstrap)", "config", "C"),
		backendType:       cli.String(fs, "", "Storage backend type: registry, http-proxy, localfs", "backend-type"),
		backendConfig:     cli.String(fs, "", "Storage backend configuration: the JSON of the type's section", "backend-config"),
		backendConfigFile: cli.String(fs, "", "File holding the storage backend configuration JSON", "backend-config-file"),
		dirFlag:           dirNames[0],
	}
}

// backendSpec is a storage backend resolved from the command line.
type backendSpec struct {
	typ          string
	settings     json.RawMessage
	cfg          *config.Config // from --config: cache and read settings too
	metadataPath string         // a blob cache entry's config_v2.metadata_path
}

// spec resolves the backend options; nil when blobs are local.
func (b *blobOpts) spec() (*backendSpec, error) {
	switch {
	case *b.backendConfig != "" && *b.backendConfigFile != "":
		return nil, usagef("--backend-config conflicts with --backend-config-file")
	case *b.config != "" && *b.backendType != "":
		return nil, usagef("--config conflicts with --backend-type")
	case *b.config != "" && *b.blobDir != "":
		return nil, usagef("--config conflicts with --%s", b.dirFlag)
	case *b.backendType != "" && *b.blobDir != "":
		return nil, usagef("--backend-type conflicts with --%s", b.dirFlag)
	case *b.backendType == "" && (*b.backendConfig != "" || *b.backendConfigFile != ""):
		return nil, usagef("--backend-config and --backend-config-file need --backend-type")
	}
	if *b.config != "" {
		return loadBackendConfig(*b.config)
	}
	if *b.backendType == "" {
		return nil, nil
	}
	settings := []byte(*b.backendConfig)
	if *b.backendConfigFile != "" {
		var err error
		if settings, err = readSmallFile(*b.backendConfigFile); err != nil {
			return nil, fmt.Errorf("--backend-config-file: %w", err)
		}
	}
	if len(settings) == 0 {
		return nil, usagef("--backend-type needs --backend-config or --backend-config-file")
	}
	if !json.Valid(settings) {
		return nil, usagef("the %s backend configuration is not JSON", *b.backendType)
	}
	return &backendSpec{typ: *b.backendType, settings: settings}, nil
}

func readSmallFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > config.MaxSize {
		return nil, fmt.Errorf("%s is %d bytes, more than the 1 MiB limit", path, st.Size())
	}
	return os.ReadFile(path)
}

// loadBackendConfig reads --config: a nydusd configuration, or a blob
// cache entry ({"type":"bootstrap","id":…,"config_v2":{…,"metadata_path":…}})
// as upstream's export takes it.
func loadBackendConfig(path string) (*backendSpec, error) {
	data, err := readSmallFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("--config %s: not a JSON object: %w", path, err)
	}
	spec := &backendSpec{}
	if v2, ok := probe["config_v2"]; ok {
		var meta struct {
			MetadataPath string `json:"metadata_path"`
		}
		if err := json.Unmarshal(v2, &meta); err != nil {
			return nil, fmt.Errorf("--config %s: config_v2: %w", path, err)
		}
		spec.metadataPath, data = meta.MetadataPath, v2
	} else if _, ok := probe["config"]; ok {
		if _, entry := probe["type"]; entry {
			return nil, fmt.Errorf("--config %s: a blob cache entry with a legacy \"config\" section is not supported; write it as \"config_v2\"", path)
		}
	}
	if spec.cfg, err = config.Parse(data); err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	spec.typ, spec.settings = spec.cfg.Backend.Type, spec.cfg.Backend.Settings
	return spec, nil
}

// source returns the chunk source serving the image's blobs as the blob
// options say. export and unpack need one; check verifies data only when
// verify is set.
func (l *loadedImage) source(b *blobOpts, spec *backendSpec) (rafs.ChunkSource, error) {
	if spec == nil {
		return l.chunkSource(*b.blob, *b.blobDir)
	}
	files, err := l.blobFiles(*b.blob)
	if err != nil {
		return nil, err
	}
	return l.backendSource(spec, files)
}

// backendSource reads blobs through the storage chain (storage.Source over
// a storage/backend backend): files given on the command line first, the
// backend for the rest. Zran layers are read through their RAFS blob's
// blob.meta, from the backend too.
func (l *loadedImage) backendSource(spec *backendSpec, files map[string]io.ReaderAt) (rafs.ChunkSource, error) {
	be, err := backend.New(spec.typ, spec.settings)
	if err != nil {
		return nil, err
	}
	l.close = append(l.close, closerFunc(be.Close))
	open := func(ctx context.Context, id string) (storage.BlobReader, error) {
		if r, ok := files[id]; ok {
			return storage.ReaderAt(r), nil
		}
		return be.Open(ctx, id)
	}
	tables, err := storage.ChunkTables(l.img)
	if err != nil {
		return nil, err
	}
	opts := []storage.SourceOption{storage.WithChunkTables(tables), storage.WithZranMetaLoader(l.zranMeta(open))}
	if spec.cfg != nil {
		co, err := spec.cfg.SourceOptions()
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		opts = append(opts, co...)
	}
	src, err := storage.NewSource(open, opts...)
	if err != nil {
		return nil, err
	}
	l.close = append(l.close, src)
	return src, nil
}

// zranMeta finds the blob.meta of a zran blob: in the RAFS blob the
// bootstrap names, or, for a per-layer image loaded from its RAFS blob
// (inline bootstrap), in that blob.
func (l *loadedImage) zranMeta(open storage.OpenFunc) func(context.Context, *layout.BlobEntry) (*targzref.Meta, error) {
	return func(ctx context.Context, e *layout.BlobEntry) (*targzref.Meta, error) {
		if id := targzref.MetaID(e); id != "" {
			r, err := open(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("zran blob %s: open its RAFS blob %s: %w", e.ID(), id, err)
			}
			return targzref.ReadMeta(ctxReaderAt{ctx, r}, int64(e.MetaSize), e)
		}
		if len(l.blobs) == 1 {
			for _, r := range l.blobs {
				size, err := readerSize(r)
				if err != nil {
					return nil, err
				}
				return targzref.ReadMeta(r, size, e)
			}
		}
		return nil, fmt.Errorf("zran blob %s: the bootstrap does not name its RAFS blob; check the RAFS blob itself (inline bootstrap)", e.ID())
	}
}

type ctxReaderAt struct {
	ctx context.Context
	r   storage.BlobReader
}

func (c ctxReaderAt) ReadAt(p []byte, off int64) (int, error) { return c.r.ReadAt(c.ctx, p, off) }

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
