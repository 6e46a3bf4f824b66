package main

import (
	"flag"
	"fmt"
	"github.com/gonydus/nydus/cmd/internal/cli"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

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
		chunkDict:      cli.String(fs, "", "Chunk dictionary: bootstrap=PATH (accepted for compatibility)", "chunk-dict"),
		prefetchPolicy: cli.String(fs, "none", "Prefetch policy: fs (patterns on stdin), blob, none", "prefetch-policy", "P"),
		outputJSON:     cli.String(fs, "", "JSON file to write merge output to", "output-json", "J"),
		blobDir:        cli.String(fs, "", "Directory holding the layers' blobs (unused: ids come from file names)", "blob-dir", "D"),
		config:         cli.String(fs, "", "Storage backend configuration (unused)", "config", "C"),
		whiteout:       cli.String(fs, "oci", "Whiteout spec of the layers: oci, overlayfs, none", "whiteout-spec", "W"),
	}
	cli.Register(fs, &o.blobDigests, "Blob digests (sha256:HEX or HEX), one per SOURCE, replacing the layer blob ids", "blob-digests")
	cli.Register(fs, &o.originalIDs, "Original blob ids, one per SOURCE", "original-blob-ids")
	cli.Register(fs, &o.blobSizes, "Blob sizes, one per SOURCE", "blob-sizes")
	cli.Register(fs, &o.tocDigests, "Blob ToC digests, one per SOURCE", "blob-toc-digests")
	cli.Register(fs, &o.tocSizes, "Blob ToC sizes, one per SOURCE", "blob-toc-sizes")
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
	if *o.chunkDict != "" {
		slog.Debug("merge: --chunk-dict accepted; chunk references already name their blobs", "dict", *o.chunkDict)
	}

	var merged *tree.Tree
	index := map[string]uint32{} // blob id -> merged blob index
	addLayer := func(lt *tree.Tree) error {
		remap := make([]uint32, len(lt.Blobs))
		for i, b := range lt.Blobs {
			k, ok := index[b.ID()]
			if !ok {
				k = uint32(len(merged.Blobs))
				index[b.ID()] = k
				merged.Blobs = append(merged.Blobs, b)
			}
			remap[i] = k
		}
		done := map[*layout.ChunkInfo]bool{}
		return lt.Walk(func(_ string, ino *tree.Inode) error {
			for _, c := range ino.Chunks {
				if !done[c] {
					done[c] = true
					c.BlobIndex = remap[c.BlobIndex]
				}
			}
			return nil
		})
	}
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
		if err := addLayer(pt); err != nil {
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
		if err := o.applyLayerOverrides(lt, i, fileStem(src)); err != nil {
			return err
		}
		if merged == nil {
			merged = &tree.Tree{Root: lt.Root, ChunkSize: lt.ChunkSize, Flags: lt.Flags, Prefetch: lt.Prefetch}
		} else {
			if lt.ChunkSize != merged.ChunkSize {
				return fmt.Errorf("%w: %s has chunk size %#x, lower layers %#x", errInconsistent, src, lt.ChunkSize, merged.ChunkSize)
			}
			merge.Apply(merged.Root, lt.Root, spec)
			merged.Flags |= lt.Flags & layout.FlagExplicitUIDGID
			merged.Prefetch = append(merged.Prefetch, lt.Prefetch...)
		}
		if err := addLayer(lt); err != nil {
			return err
		}
	}
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

// applyLayerOverrides applies --blob-digests and friends to the layer's own
// blob: the one named by the bootstrap file, else its last blob.
func (o *mergeOpts) applyLayerOverrides(lt *tree.Tree, i int, stem string) error {
	if len(lt.Blobs) == 0 {
		return nil
	}
	own := lt.Blobs[len(lt.Blobs)-1]
	for _, b := range lt.Blobs {
		if b.ID() == stem {
			own = b
		}
	}
	if len(o.blobDigests) > 0 {
		id := strings.TrimPrefix(o.blobDigests[i], "sha256:")
		if !isHexID(id) {
			return usagef("--blob-digests value %q is not a sha256 digest", o.blobDigests[i])
		}
		own.SetID(id)
	}
	if len(o.blobSizes) > 0 {
		n, err := strconv.ParseUint(o.blobSizes[i], 10, 64)
		if err != nil {
			return usagef("--blob-sizes value %q: %v", o.blobSizes[i], err)
		}
		own.CompressedSize = n
	}
	if len(o.tocDigests) > 0 {
		id := strings.TrimPrefix(o.tocDigests[i], "sha256:")
		b, err := hexDigest(id)
		if err != nil {
			return usagef("--blob-toc-digests value %q: %v", o.tocDigests[i], err)
		}
		own.TOCDigest = b
	}
	if len(o.tocSizes) > 0 {
		n, err := strconv.ParseUint(o.tocSizes[i], 10, 32)
		if err != nil {
			return usagef("--blob-toc-sizes value %q: %v", o.tocSizes[i], err)
		}
		own.TOCSize = uint32(n)
	}
	return nil
}
