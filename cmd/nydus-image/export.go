package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"github.com/gonydus/nydus/cmd/internal/cli"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/gonydus/nydus/rafs/export"
)

type exportOpts struct {
	bootstrap, blob, blobDir, output, config *string
	block, verity                            *bool
	threads                                  *string
}

func newExport() *cli.Command {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	o := &exportOpts{
		block:     cli.Bool(fs, "Export to one raw block image (EROFS) the kernel mounts", "block"),
		bootstrap: cli.String(fs, "", "Bootstrap (or blob with inline bootstrap) to export", "bootstrap", "B"),
		blob:      cli.String(fs, "", "Blob file holding the image's data", "blob", "b"),
		blobDir:   cli.String(fs, "", "Directory of blobs named by blob id (localfs)", "blob-dir", "D"),
		output:    cli.String(fs, "", "Output image path [default: BOOTSTRAP.disk]", "output", "O"),
		config:    cli.String(fs, "", "Storage backend configuration (not supported yet)", "config", "C"),
		threads:   cli.String(fs, "4", "Worker threads (accepted for compatibility)", "threads"),
		verity:    cli.Bool(fs, "Append dm-verity data (not supported yet)", "verity"),
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
		return usagef("--verity is not supported yet")
	}
	if *o.config != "" {
		return usagef("exporting through a storage backend is not supported yet; pass --blob or --blob-dir")
	}
	path, l, err := loadArg(args, *o.bootstrap)
	if err != nil {
		return err
	}
	defer l.Close()
	src, err := l.chunkSource(*o.blob, *o.blobDir)
	if err != nil {
		return err
	}
	out := *o.output
	if out == "" {
		out = path + ".disk"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tmp, err := os.CreateTemp(filepath.Dir(out), ".export-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
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
