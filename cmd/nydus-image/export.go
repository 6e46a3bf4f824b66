package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/rafs/export"
)

type exportOpts struct {
	bootstrap, output, threads *string
	blobs                      *blobOpts
	block, verity              *bool
}

func newExport() *cli.Command {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	o := &exportOpts{
		block:     cli.Bool(fs, "Export to one raw block image (EROFS) the kernel mounts", "block"),
		bootstrap: cli.String(fs, "", "Bootstrap (or blob with inline bootstrap) to export", "bootstrap", "B"),
		blobs: addBlobOpts(fs, "Directory of blobs named by blob id (the localfs backend)",
			"localfs-dir", "D", "blob-dir"),
		output:  cli.String(fs, "", "Output image path [default: LOCALFS_DIR/BOOTSTRAP_NAME.disk with --localfs-dir, else BOOTSTRAP.disk]", "output", "O"),
		threads: cli.String(fs, "4", "Worker threads, 1-32 (the export streams the image with one writer)", "threads"),
		verity:  cli.Bool(fs, "Append dm-verity data (refused: not implemented)", "verity"),
	}
	c := &cli.Command{Name: "export", Flags: fs,
		Usage: "export --block [OPTIONS] [BOOTSTRAP]\nExport a RAFS v6 image to a raw EROFS block image: mount -t erofs -o loop,ro IMAGE DIR"}
	c.Run = func(args []string) error { return o.run(args) }
	return c
}

func (o *exportOpts) run(args []string) error {
	if !*o.block {
		return usagef("export needs --block")
	}
	if *o.verity {
		return usagef("--verity: dm-verity data for the block image is not implemented")
	}
	if n, err := strconv.Atoi(*o.threads); err != nil || n < 1 || n > 32 {
		return usagef("invalid --threads %q (1-32)", *o.threads)
	}
	spec, err := o.blobs.spec()
	if err != nil {
		return err
	}
	bootArg := *o.bootstrap
	if bootArg == "" && len(args) == 0 && spec != nil && spec.metadataPath != "" {
		bootArg = spec.metadataPath // a blob cache entry names its bootstrap
	}
	path, l, err := loadArg(args, bootArg)
	if err != nil {
		return err
	}
	defer l.Close()
	src, err := l.source(o.blobs, spec)
	if err != nil {
		return err
	}
	out := *o.output
	switch {
	case out != "":
	case *o.blobs.blobDir != "": // where upstream writes it
		out = filepath.Join(*o.blobs.blobDir, filepath.Base(path)+".disk")
	default:
		out = path + ".disk"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tmp, err := os.CreateTemp(filepath.Dir(out), ".export-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	n, err := export.Block(ctx, bytes.NewReader(l.boot), int64(len(l.boot)), src, tmp)
	if err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	slog.Info("exported block image", "bootstrap", path, "output", out, "size", n)
	return nil
}
