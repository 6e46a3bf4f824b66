package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gonydus/nydus/cmd/internal/cli"

	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
)

type createOpts struct {
	typ, bootstrap, blobDir, blob, blobID       *string
	chunkSize, compressor, digester, fsVersion  *string
	features, chunkDict, parent, whiteout       *string
	prefetchPolicy, outputJSON                  *string
	inlineMeta, alignedChunk, repeatable, quiet *bool
	refused                                     refusedFlags
}

func newCreate() *cli.Command {
	fs := flag.NewFlagSet("create", flag.ContinueOnError)
	o := &createOpts{
		typ:            cli.String(fs, "dir-rafs", "Conversion type: dir-rafs, tar-rafs, targz-rafs, targz-ref (also 'directory')", "type", "t", "source-type"),
		bootstrap:      cli.String(fs, "", "File path to save the generated RAFS metadata blob (bootstrap)", "bootstrap", "B"),
		blobDir:        cli.String(fs, "", "Directory to save generated blobs, named by their sha256", "blob-dir", "D"),
		blob:           cli.String(fs, "", "File path (or FIFO) to save the generated data blob (the RAFS blob for targz-ref)", "blob", "b"),
		blobID:         cli.String(fs, "", "Blob id to record instead of the blob's sha256", "blob-id"),
		inlineMeta:     cli.Bool(fs, "Inline RAFS metadata and blob metadata into the data blob", "blob-inline-meta", "inline-bootstrap"),
		chunkSize:      cli.String(fs, "0x100000", "Chunk size: power of two in [0x1000, 0x1000000], hex or decimal", "chunk-size"),
		compressor:     cli.String(fs, "zstd", "Chunk compressor: none, lz4_block, zstd", "compressor"),
		digester:       cli.String(fs, "blake3", "Chunk digester: blake3, sha256", "digester"),
		fsVersion:      cli.String(fs, "6", "RAFS version (only 6 is supported)", "fs-version", "v"),
		features:       cli.String(fs, "", "Comma-separated features: blob-toc", "features"),
		chunkDict:      cli.String(fs, "", "Chunk dictionary for dedup: bootstrap=PATH", "chunk-dict"),
		parent:         cli.String(fs, "", "Parent bootstrap: build a layer on top of it", "parent-bootstrap"),
		alignedChunk:   cli.Bool(fs, "Align uncompressed chunks to 4K (always on for RAFS v6)", "aligned-chunk", "A"),
		repeatable:     cli.Bool(fs, "Produce a repeatable image (do not record uid/gid)", "repeatable", "R"),
		whiteout:       cli.String(fs, "oci", "Whiteout spec of the source: oci, overlayfs, none", "whiteout-spec", "W"),
		prefetchPolicy: cli.String(fs, "none", "Prefetch policy: fs (patterns on stdin), blob, none", "prefetch-policy", "P"),
		outputJSON:     cli.String(fs, "", "JSON file to write build output to", "output-json", "J"),
		quiet:          cli.Bool(fs, "Show no progress (bars on a terminal, periodic lines elsewhere)", "quiet", "q"),
	}
	cli.String(fs, "", "Storage backend configuration (accepted; create reads no blobs)", "config", "C")
	cli.Bool(fs, "Skip validating the image after the build (accepted; no validation pass runs)", "disable-check")
	o.refused = refusedFlags{
		{cli.String(fs, "0", "Batch size for merging small chunks (refused unless 0: batch chunks are not written)", "batch-size"), "0",
			"--batch-size: batch chunks are not written; use 0"},
		{cli.Bool(fs, "Encrypt the blobs (refused: encrypted blobs are not written)", "encrypt", "E"), "false",
			"--encrypt: encrypted blobs are not written"},
		{cli.String(fs, "", "Directory for blob cache files (refused: not written)", "blob-cache-dir"), "",
			"--blob-cache-dir: writing blob cache files at build time is not implemented"},
		{cli.String(fs, "", "Nydus attributes file (refused: external blobs are not written)", "attributes"), "",
			"--attributes: .nydusattributes (external blobs) are not supported"},
		{cli.String(fs, "", "External blob output (refused: external blobs are not written)", "external-blob"), "",
			"--external-blob: external blobs are not supported"},
		{cli.String(fs, "", "Data blob size for estargztoc-ref (refused with that type)", "blob-data-size"), "",
			"--blob-data-size: only meaningful for --type estargztoc-ref, which is refused"},
		{cli.String(fs, "0", "File offset of the RAFS data in the blob file (refused unless 0)", "blob-offset"), "0",
			"--blob-offset: data blobs are written from offset 0"},
	}
	c := &cli.Command{Name: "create", Flags: fs,
		// nydus-snapshotter reads these from the help to decide whether to
		// pass them; unlisted, it builds without them, as with an older
		// nydus-image, instead of failing on the refusal.
		Hidden: []string{"batch-size", "encrypt"},
		Usage:  "create [OPTIONS] SOURCE\nCreate RAFS filesystems from directories or tar streams (SOURCE may be a file, a FIFO or /dev/stdin)"}
	c.Run = func(args []string) error { return o.run(c.Log, args) }
	return c
}

func parseSize(s string) (uint64, error) {
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		return strconv.ParseUint(s[2:], 16, 64)
	}
	return strconv.ParseUint(s, 10, 64)
}

// buildConfig is what create's flags ask of the builder.
type buildConfig struct {
	compressor      layout.Compressor
	digester        layout.Digester
	chunkSize       uint32
	toc             bool // --features blob-toc
	inlineBootstrap bool // --blob-inline-meta
	explicitUIDGID  bool // not --repeatable
	baseBlobs       []*layout.BlobEntry
	dict            builder.ChunkDict
}

// options turns c into the builder's options.
func (c buildConfig) options() []builder.Option {
	opts := []builder.Option{builder.WithCompressor(c.compressor), builder.WithDigester(c.digester), builder.WithChunkSize(c.chunkSize),
		builder.WithTOC(c.toc), builder.WithInlineBootstrap(c.inlineBootstrap), builder.WithExplicitUIDGID(c.explicitUIDGID),
		builder.WithBaseBlobs(c.baseBlobs)}
	if c.dict != nil {
		opts = append(opts, builder.WithChunkDict(c.dict))
	}
	return opts
}

func (o *createOpts) config() (buildConfig, error) {
	var cfg buildConfig
	if *o.fsVersion != "6" {
		if *o.fsVersion == "5" {
			return cfg, usagef("--fs-version 5: RAFS v5 is not supported, use 6")
		}
		return cfg, usagef("invalid --fs-version %q", *o.fsVersion)
	}
	cs, err := parseSize(*o.chunkSize)
	if err != nil || !layout.ValidChunkSize(cs) {
		return cfg, usagef("invalid --chunk-size %q: want a power of two in [0x1000, 0x1000000]", *o.chunkSize)
	}
	cfg.chunkSize = uint32(cs)
	if cfg.compressor, err = layout.ParseCompressor(*o.compressor); err != nil || (cfg.compressor == layout.CompressGzip && *o.typ != "targz-ref") {
		return cfg, usagef("invalid --compressor %q: want none, lz4_block or zstd", *o.compressor)
	}
	if cfg.digester, err = layout.ParseDigester(*o.digester); err != nil {
		return cfg, usagef("invalid --digester %q: want blake3 or sha256", *o.digester)
	}
	for _, f := range strings.Split(*o.features, ",") {
		switch strings.TrimSpace(f) {
		case "":
		case "blob-toc":
			cfg.toc = true
		default:
			return cfg, usagef("unsupported --features %q (supported: blob-toc)", f)
		}
	}
	cfg.inlineBootstrap = *o.inlineMeta
	cfg.explicitUIDGID = !*o.repeatable
	return cfg, nil
}

func (o *createOpts) run(log *cli.Log, args []string) error {
	if len(args) != 1 {
		return usagef("create needs exactly one SOURCE, got %d", len(args))
	}
	source := args[0]
	if err := o.refused.check(); err != nil {
		return err
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	switch {
	case *o.inlineMeta && *o.bootstrap != "":
		return usagef("--blob-inline-meta conflicts with --bootstrap")
	case *o.inlineMeta && *o.blobID != "":
		return usagef("--blob-inline-meta conflicts with --blob-id")
	case *o.blob == "" && *o.blobDir == "":
		return usagef("one of --blob or --blob-dir is required")
	case *o.bootstrap == "" && *o.blobDir == "" && !*o.inlineMeta:
		return usagef("--bootstrap is required unless --blob-dir or --blob-inline-meta is given")
	}
	if *o.blobID != "" && *o.typ == "targz-ref" {
		return usagef("conversion type 'targz-ref' conflicts with '--blob-id'")
	}
	if *o.blobID != "" {
		return usagef("--blob-id is only meaningful for ref conversions, which this build does not support yet")
	}
	var prefetch []string
	switch *o.prefetchPolicy {
	case "none", "":
	case "fs":
		if prefetch, err = readPrefetch(os.Stdin); err != nil {
			return err
		}
	case "blob":
		slog.Warn("--prefetch-policy blob is treated as none")
	default:
		return usagef("invalid --prefetch-policy %q (want fs, blob or none)", *o.prefetchPolicy)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prog, endProgress, err := cli.NewProgress(log, *o.quiet)
	if err != nil {
		return err
	}
	defer endProgress()
	if *o.typ == "targz-ref" {
		return o.runTargzRef(ctx, source, cfg, prefetch, prog, endProgress)
	}

	if *o.chunkDict != "" {
		p, ok := strings.CutPrefix(*o.chunkDict, "bootstrap=")
		if !ok {
			return usagef("--chunk-dict must be bootstrap=PATH, got %q", *o.chunkDict)
		}
		dict, err := builder.LoadChunkDict(p)
		if err != nil {
			return fmt.Errorf("load chunk dict: %w", err)
		}
		cfg.baseBlobs, cfg.dict = dict.Blobs, dict
	}
	fill, err := sourceFill(*o.typ, source, *o.whiteout, prefetch, prog)
	if err != nil {
		return err
	}
	if *o.parent != "" {
		fill, cfg, err = withParent(fill, cfg, *o.parent, *o.whiteout)
		if err != nil {
			return err
		}
	}

	start := time.Now()
	out, err := openBlobOutput(*o.blob, *o.blobDir)
	if err != nil {
		return err
	}
	res, err := builder.Build(ctx, fill, out, cfg.options()...)
	endProgress()
	if err != nil {
		out.abort()
		return err
	}
	blobPath, err := out.commit(res.Blob.ID())
	if err != nil {
		return err
	}
	bootPath := *o.bootstrap
	if !*o.inlineMeta {
		if bootPath == "" {
			sum := sha256.Sum256(res.Bootstrap)
			bootPath = filepath.Join(*o.blobDir, hex.EncodeToString(sum[:]))
		}
		if err := writeFileAtomic(bootPath, res.Bootstrap, 0o644); err != nil {
			return err
		}
	}
	slog.Info("image built", "blob", blobPath, "bootstrap", bootPath, "result", res.String(), "elapsed", time.Since(start))
	var blobs []string
	for _, e := range res.BootstrapInfo.Blobs {
		blobs = append(blobs, e.ID())
	}
	return writeOutputJSON(*o.outputJSON, outputJSON{
		Bootstrap: bootPath, Blobs: blobs, FSVersion: "6", Compressor: cfg.compressor.String(),
		consumed: time.Since(start),
	})
}

// readPrefetch reads prefetch patterns, one absolute path per line.
func readPrefetch(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "/") {
			return nil, usagef("prefetch pattern %q is not an absolute path", line)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read prefetch patterns: %w", err)
	}
	return out, nil
}
