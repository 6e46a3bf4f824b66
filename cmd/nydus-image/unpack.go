package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/rafs/unpack"
)

type unpackOpts struct {
	bootstrap, output *string
	blobs             *blobOpts
}

func newUnpack() *cli.Command {
	fs := flag.NewFlagSet("unpack", flag.ContinueOnError)
	o := &unpackOpts{
		bootstrap: cli.String(fs, "", "Bootstrap (or blob with inline bootstrap) to unpack", "bootstrap", "B"),
		blobs:     addBlobOpts(fs, "Directory of blobs named by blob id (localfs)", "blob-dir", "D"),
		output:    cli.String(fs, "", "Output tar file or FIFO", "output", "o"),
	}
	c := &cli.Command{Name: "unpack", Flags: fs,
		Usage: "unpack [OPTIONS] [BOOTSTRAP] --output OUT.tar\nUnpack a RAFS v6 image into an OCI layer tar"}
	c.Run = func(args []string) error { return o.run(args) }
	return c
}

func (o *unpackOpts) run(args []string) error {
	if *o.output == "" {
		return usagef("--output is required")
	}
	spec, err := o.blobs.spec()
	if err != nil {
		return err
	}
	path, l, err := loadArg(args, *o.bootstrap)
	if err != nil {
		return err
	}
	defer l.Close()
	src, err := l.source(o.blobs, spec)
	if err != nil {
		return err
	}
	t, err := l.img.Tree()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f, err := os.OpenFile(*o.output, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := unpack.WriteTar(ctx, w, t, src); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", *o.output, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	slog.Info("unpacked", "bootstrap", path, "output", *o.output)
	return nil
}
