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

	"github.com/gonydus/nydus/rafs/unpack"
)

type unpackOpts struct {
	bootstrap, blob, blobDir, output, config, backendType, backendConfig *string
}

func newUnpack() *command {
	fs := flag.NewFlagSet("unpack", flag.ContinueOnError)
	o := &unpackOpts{
		bootstrap:     strOpt(fs, "", "Bootstrap (or blob with inline bootstrap) to unpack", "bootstrap", "B"),
		blob:          strOpt(fs, "", "Blob file holding the image's data", "blob", "b"),
		blobDir:       strOpt(fs, "", "Directory of blobs named by blob id", "blob-dir", "D"),
		output:        strOpt(fs, "", "Output tar file or FIFO", "output", "o"),
		config:        strOpt(fs, "", "Storage backend configuration (not supported yet)", "config", "C"),
		backendType:   strOpt(fs, "", "Backend type (not supported yet)", "backend-type"),
		backendConfig: strOpt(fs, "", "Backend configuration (not supported yet)", "backend-config"),
	}
	c := &command{name: "unpack", flags: fs,
		usage: "unpack [OPTIONS] [BOOTSTRAP] --output OUT.tar\nUnpack a RAFS v6 image into an OCI layer tar"}
	c.run = func(args []string) error { return o.run(args) }
	return c
}

func (o *unpackOpts) run(args []string) error {
	path, err := onePath(args, *o.bootstrap, "bootstrap")
	if err != nil {
		return err
	}
	if *o.output == "" {
		return usagef("--output is required")
	}
	if *o.backendType != "" || *o.backendConfig != "" || *o.config != "" {
		return usagef("unpacking through a storage backend is not supported yet; pass --blob or --blob-dir")
	}
	l, err := loadImage(path)
	if err != nil {
		return err
	}
	defer l.Close()
	src, err := l.chunkSource(*o.blob, *o.blobDir)
	if err != nil {
		return err
	}
	defer src.Close()
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
