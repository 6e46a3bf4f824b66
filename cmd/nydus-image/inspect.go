package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/rafs"
)

type inspectOpts struct {
	bootstrap, request, blobDir, config *string
}

func newInspect() *cli.Command {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	o := &inspectOpts{
		bootstrap: cli.String(fs, "", "Bootstrap (or blob with inline bootstrap) to inspect", "bootstrap", "B"),
		request:   cli.String(fs, "", "Request: stats (default), blobs, prefetch, tree", "request", "R"),
		blobDir:   cli.String(fs, "", "Directory of blobs (accepted; inspect reads only metadata)", "blob-dir", "D"),
		config:    cli.String(fs, "", "Storage backend configuration (accepted; inspect reads only metadata)", "config", "C"),
	}
	c := &cli.Command{Name: "inspect", Flags: fs,
		Usage: "inspect [OPTIONS] [BOOTSTRAP]\nPrint a RAFS v6 bootstrap as JSON (-R blobs prints the blob table as nydusify expects)"}
	c.Run = func(args []string) error { return o.run(args) }
	return c
}

type blobJSON struct {
	BlobID           string `json:"blob_id"`
	ReadaheadOffset  uint64 `json:"readahead_offset"`
	ReadaheadSize    uint64 `json:"readahead_size"`
	DecompressedSize uint64 `json:"decompressed_size"`
	CompressedSize   uint64 `json:"compressed_size"`
	ChunkCount       uint32 `json:"chunk_count"`
	Compressor       string `json:"compressor"`
	Digester         string `json:"digester"`
	Features         uint32 `json:"features"`
}

func (o *inspectOpts) run(args []string) error {
	if *o.blobDir != "" && *o.config != "" {
		return usagef("--blob-dir conflicts with --config")
	}
	_, l, err := loadArg(args, *o.bootstrap)
	if err != nil {
		return err
	}
	defer l.Close()
	img := l.img
	var out any
	switch *o.request {
	case "blobs":
		out = blobsJSON(img)
	case "prefetch":
		out = prefetchJSON(img)
	case "tree":
		var entries []map[string]any
		err := img.Walk(func(p string, ino *rafs.Inode) error {
			entries = append(entries, map[string]any{"path": p, "nid": ino.Nid, "mode": fmt.Sprintf("%#o", ino.Mode),
				"uid": ino.UID, "gid": ino.GID, "size": ino.Size, "mtime": ino.Mtime, "nlink": ino.Nlink})
			return nil
		})
		if err != nil {
			return err
		}
		out = entries
	case "", "stats":
		sb, ext := img.SuperBlock(), img.ExtSuperBlock()
		out = map[string]any{
			"version": "6", "bootstrap_size": img.Size(), "inodes": img.Inodes(), "root_nid": img.Root(),
			"block_size": sb.BlockSize(), "meta_blkaddr": sb.MetaBlkAddr, "build_time": sb.BuildTime,
			"flags": fmt.Sprintf("%#x", uint64(ext.Flags)), "compressor": ext.Flags.Compressor().String(),
			"digester": ext.Flags.Digester().String(), "explicit_uid_gid": img.ExplicitUIDGID(),
			"chunk_size": fmt.Sprintf("%#x", ext.ChunkSize), "chunk_table_entries": ext.ChunkTableSize / 80,
			"prefetch": prefetchJSON(img), "blobs": blobsJSON(img),
		}
	default:
		return usagef("unknown --request %q (want stats, blobs, prefetch or tree)", *o.request)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func blobsJSON(img *rafs.Image) []blobJSON {
	out := []blobJSON{}
	for _, b := range img.Blobs() {
		out = append(out, blobJSON{BlobID: b.ID(), DecompressedSize: b.UncompressedSize, CompressedSize: b.CompressedSize,
			ChunkCount: b.ChunkCount, Compressor: b.Compressor.String(), Digester: b.Digester.String(), Features: uint32(b.Features)})
	}
	return out
}

func prefetchJSON(img *rafs.Image) []uint64 {
	out := []uint64{}
	return append(out, img.PrefetchTable()...)
}
