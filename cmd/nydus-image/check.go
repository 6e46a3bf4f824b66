package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/rafs"
)

type checkOpts struct {
	bootstrap, outputJSON *string
	blobs                 *blobOpts
	verbose               *bool
}

func newCheck() *cli.Command {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	o := &checkOpts{
		bootstrap:  cli.String(fs, "", "Bootstrap (or blob with inline bootstrap) to check", "bootstrap", "B"),
		blobs:      addBlobOpts(fs, "Directory of blobs (localfs): also read and verify every chunk", "blob-dir", "D"),
		outputJSON: cli.String(fs, "", "JSON file to write check output to", "output-json", "J"),
		verbose:    cli.Bool(fs, "List every file", "verbose", "v"),
	}
	c := &cli.Command{Name: "check", Flags: fs,
		Usage: "check [OPTIONS] [BOOTSTRAP]\nValidate a RAFS v6 bootstrap, and its blobs' chunks when blobs are given"}
	c.Run = func(args []string) error { return o.run(args) }
	return c
}

func onePath(args []string, flagVal, what string) (string, error) {
	switch {
	case len(args) == 1 && flagVal == "":
		return args[0], nil
	case len(args) == 0 && flagVal != "":
		return flagVal, nil
	}
	return "", usagef("give the %s once, as an argument or with --bootstrap", what)
}

func (o *checkOpts) run(args []string) error {
	start := time.Now()
	spec, err := o.blobs.spec()
	if err != nil {
		return err
	}
	path, l, err := loadArg(args, *o.bootstrap)
	if err != nil {
		return err
	}
	defer l.Close()
	img := l.img
	verifyData := *o.blobs.blobDir != "" || *o.blobs.blob != "" || len(l.blobs) > 0 || spec != nil
	var src rafs.ChunkSource
	if verifyData {
		if src, err = l.source(o.blobs, spec); err != nil {
			return err
		}
	}
	ctx := context.Background()
	var files, dirs, others, chunks int
	var bytes uint64
	seen := map[uint64]bool{}
	buf := make([]byte, img.ChunkSize())
	err = img.Walk(func(p string, ino *rafs.Inode) error {
		if *o.verbose {
			fmt.Printf("%s %s %d\n", ino.FileMode(), p, ino.Size)
		}
		if seen[ino.Nid] {
			return nil
		}
		seen[ino.Nid] = true
		if _, err := img.Xattrs(ino.Nid); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		switch {
		case ino.IsDir():
			dirs++
		case ino.IsSymlink():
			others++
			if _, err := img.Readlink(ino.Nid); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		case ino.IsReg():
			files++
			cs, err := img.Chunks(ino.Nid)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			chunks += len(cs)
			bytes += ino.Size
			if src != nil {
				for off := int64(0); off < int64(ino.Size); off += int64(len(buf)) {
					if _, err := img.ReadFile(ctx, src, ino.Nid, buf, off); err != nil && !errors.Is(err, io.EOF) {
						return fmt.Errorf("%s: %w", p, err)
					}
				}
			}
		default:
			others++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", errInconsistent, err)
	}
	var ids []string
	for _, b := range img.Blobs() {
		ids = append(ids, b.ID())
	}
	fmt.Fprintf(os.Stdout, "RAFS v6 bootstrap %s: %d dirs, %d files (%d bytes, %d chunks), %d other entries, %d blobs",
		path, dirs, files, bytes, chunks, others, len(ids))
	if src != nil {
		fmt.Fprintf(os.Stdout, "; all chunk data verified")
	}
	fmt.Fprintln(os.Stdout)
	for _, id := range ids {
		fmt.Fprintf(os.Stdout, "blob %s\n", id)
	}
	return writeOutputJSON(*o.outputJSON, outputJSON{Bootstrap: path, Blobs: ids, FSVersion: "6",
		Compressor: img.Flags().Compressor().String(), consumed: time.Since(start)})
}
