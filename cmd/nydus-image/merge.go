package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/merge"
	"github.com/gonydus/nydus/rafs/tree"
)

type mergeOpts struct {
	bootstrap, parent, chunkDict, prefetchPolicy *string
	outputJSON, blobDir, config, whiteout        *string
	blobDigests, originalIDs, blobSizes          cli.StringList
	tocDigests, tocSizes                         cli.StringList
}

func newMerge() *cli.Command {
	fs := flag.NewFlagSet("merge", flag.ContinueOnError)
	o := &mergeOpts{
		bootstrap:      cli.String(fs, "", "Output path of the merged bootstrap", "bootstrap", "B"),
		parent:         cli.String(fs, "", "Bootstrap of lower layers to merge on top of", "parent-bootstrap"),
		chunkDict:      cli.String(fs, "", "Chunk dictionary the layers were built with: bootstrap=PATH; its blobs are not a layer's own", "chunk-dict"),
		prefetchPolicy: cli.String(fs, "none", "Prefetch policy: fs (patterns on stdin), blob, none", "prefetch-policy", "P"),
		outputJSON:     cli.String(fs, "", "JSON file to write merge output to", "output-json", "J"),
		blobDir:        cli.String(fs, "", "Directory holding the layers' blobs (unused: ids come from file names)", "blob-dir", "D"),
		config:         cli.String(fs, "", "Storage backend configuration; when given, layer blob ids are kept as the bootstraps record them", "config", "C"),
		whiteout:       cli.String(fs, "oci", "Whiteout spec of the layers: oci, overlayfs, none", "whiteout-spec", "W"),
	}
	cli.Register(fs, &o.blobDigests, "Digests of the layers' RAFS blobs, one per SOURCE: the blob id, or the meta blob of a zran layer", "blob-digests")
	cli.Register(fs, &o.originalIDs, "Blob ids of the layers' own blobs, one per SOURCE [default: SOURCE's file name]", "original-blob-ids")
	cli.Register(fs, &o.blobSizes, "Sizes of the layers' RAFS blobs, one per SOURCE (compressed size, or meta size of a zran layer)", "blob-sizes")
	cli.Register(fs, &o.tocDigests, "Digests of the layers' RAFS blob ToCs, one per SOURCE", "blob-toc-digests")
	cli.Register(fs, &o.tocSizes, "Sizes of the layers' RAFS blob ToCs, one per SOURCE", "blob-toc-sizes")
	c := &cli.Command{Name: "merge", Flags: fs,
		Usage: "merge [OPTIONS] SOURCE...\nMerge layer bootstraps, lowest first, into one image bootstrap (blob ids from each SOURCE's file name)"}
	c.Run = func(args []string) error { return o.run(args) }
	return c
}

func perLayer(name string, l cli.StringList, n int) error {
	if len(l) != 0 && len(l) != n {
		return usagef("--%s lists %d values for %d sources", name, len(l), n)
	}
	return nil
}

func (o *mergeOpts) run(sources []string) error {
	start := time.Now()
	if len(sources) == 0 {
		return usagef("merge needs at least one SOURCE bootstrap")
	}
	if *o.bootstrap == "" {
		return usagef("--bootstrap is required")
	}
	for name, l := range map[string]cli.StringList{"blob-digests": o.blobDigests, "original-blob-ids": o.originalIDs,
		"blob-sizes": o.blobSizes, "blob-toc-digests": o.tocDigests, "blob-toc-sizes": o.tocSizes} {
		if err := perLayer(name, l, len(sources)); err != nil {
			return err
		}
	}
	spec, err := merge.ParseWhiteoutSpec(*o.whiteout)
	if err != nil {
		return usagef("%v", err)
	}
	var prefetch []string
	switch *o.prefetchPolicy {
	case "none", "":
	case "fs":
		if prefetch, err = readPrefetch(os.Stdin); err != nil {
			return err
		}
	case "blob":
	default:
		return usagef("invalid --prefetch-policy %q", *o.prefetchPolicy)
	}
	dict, err := o.dictBlobs()
	if err != nil {
		return err
	}

	var merged *tree.Tree
	var table merge.Table
	if *o.parent != "" {
		p, err := loadImage(*o.parent)
		if err != nil {
			return fmt.Errorf("parent bootstrap: %w", err)
		}
		pt, err := p.img.Tree()
		p.Close()
		if err != nil {
			return fmt.Errorf("parent bootstrap: %w", err)
		}
		merged = &tree.Tree{Root: pt.Root, ChunkSize: pt.ChunkSize, Flags: pt.Flags, Prefetch: pt.Prefetch}
		if err := table.Add(pt); err != nil {
			return err
		}
	}
	for i, src := range sources {
		l, err := loadImage(src)
		if err != nil {
			return err
		}
		lt, err := l.img.Tree()
		l.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		own, err := merge.OwnBlob(lt.Blobs, dict)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		if own != nil {
			lb, err := o.layerBlob(i, src)
			if err != nil {
				return err
			}
			lb.Apply(own)
		}
		if merged == nil {
			// The lowest layer has nothing under it: its whiteouts and
			// opaque markers delete nothing and must not show.
			merge.Strip(lt.Root, spec)
			merged = &tree.Tree{Root: lt.Root, ChunkSize: lt.ChunkSize, Flags: lt.Flags, Prefetch: lt.Prefetch}
		} else {
			if lt.ChunkSize != merged.ChunkSize {
				return fmt.Errorf("%w: %s has chunk size %#x, lower layers %#x", errInconsistent, src, lt.ChunkSize, merged.ChunkSize)
			}
			merge.Apply(merged.Root, lt.Root, spec)
			merged.Flags |= lt.Flags & layout.FlagExplicitUIDGID
			merged.Prefetch = append(merged.Prefetch, lt.Prefetch...)
		}
		if err := table.Add(lt); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
	}
	merged.Blobs = table.Blobs
	if *o.prefetchPolicy == "fs" {
		merged.Prefetch = prefetch
	}
	boot, info, err := builder.EncodeBootstrap(merged)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(*o.bootstrap, boot, 0o644); err != nil {
		return err
	}
	var ids []string
	for _, b := range info.Blobs {
		ids = append(ids, b.ID())
	}
	slog.Info("merged", "layers", len(sources), "bootstrap", *o.bootstrap, "blobs", len(ids), "inodes", info.Inodes)
	return writeOutputJSON(*o.outputJSON, outputJSON{Bootstrap: *o.bootstrap, Blobs: ids, FSVersion: "6",
		Compressor: merged.Flags.Compressor().String(), consumed: time.Since(start)})
}

// dictBlobs returns the blob ids of the --chunk-dict bootstrap.
func (o *mergeOpts) dictBlobs() (map[string]bool, error) {
	if *o.chunkDict == "" {
		return nil, nil
	}
	kind, path, ok := strings.Cut(*o.chunkDict, "=")
	if !ok {
		kind, path = "bootstrap", *o.chunkDict
	}
	if kind != "bootstrap" {
		return nil, usagef("invalid chunk dict type %q in --chunk-dict (want bootstrap=PATH)", kind)
	}
	d, err := loadImage(path)
	if err != nil {
		return nil, fmt.Errorf("chunk dict: %w", err)
	}
	defer d.Close()
	ids := map[string]bool{}
	for _, b := range d.img.Blobs() {
		ids[b.ID()] = true
	}
	return ids, nil
}

// layerBlob says how source i (file src) names its own blob in the merged
// image, as upstream's merge does: without --config the id is the
// --original-blob-ids value, else the file's name when that is a blob id
// (nydus-snapshotter names each bootstrap by its layer's digest); then
// --blob-digests and --blob-sizes describe the RAFS blob (the blob itself,
// or the meta blob of a zran layer), --blob-toc-* its ToC.
func (o *mergeOpts) layerBlob(i int, src string) (merge.LayerBlob, error) {
	var lb merge.LayerBlob
	if *o.config == "" {
		if len(o.originalIDs) > 0 {
			id := o.originalIDs[i]
			if len(id) != 64 {
				return lb, usagef("--original-blob-ids value %q is not a blob id (64 characters, a sha256 hex)", id)
			}
			lb.ID = &id
		} else if stem := fileStem(src); isHexID(stem) {
			lb.ID = &stem
		}
	}
	if len(o.blobDigests) > 0 {
		d, err := hexDigest(strings.TrimPrefix(o.blobDigests[i], "sha256:"))
		if err != nil {
			return lb, usagef("--blob-digests value %q: %v", o.blobDigests[i], err)
		}
		lb.Digest = &d
	}
	if len(o.blobSizes) > 0 {
		n, err := strconv.ParseUint(o.blobSizes[i], 10, 64)
		if err != nil {
			return lb, usagef("--blob-sizes value %q: %v", o.blobSizes[i], err)
		}
		lb.Size = &n
	}
	if len(o.tocDigests) > 0 {
		d, err := hexDigest(strings.TrimPrefix(o.tocDigests[i], "sha256:"))
		if err != nil {
			return lb, usagef("--blob-toc-digests value %q: %v", o.tocDigests[i], err)
		}
		lb.TOCDigest = &d
	}
	if len(o.tocSizes) > 0 {
		n, err := strconv.ParseUint(o.tocSizes[i], 10, 32)
		if err != nil {
			return lb, usagef("--blob-toc-sizes value %q: %v", o.tocSizes[i], err)
		}
		s := uint32(n)
		lb.TOCSize = &s
	}
	return lb, nil
}
