package main

import (
	"flag"
	"fmt"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/convert"
)

type checkOpts struct {
	source, target, platform, workDir *string
	sourceInsecure, targetInsecure    *bool
	quiet                             *bool
	refused                           func() error
}

func newCheck() *cli.Command {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	o := &checkOpts{
		source:         cli.String(fs, "", "Source OCI image reference: compare the Nydus image's files with it", "source"),
		target:         cli.String(fs, "", "Target (Nydus) image reference", "target"),
		sourceInsecure: cli.Bool(fs, "Skip verifying server certs for HTTPS source registry (plain HTTP allowed)", "source-insecure"),
		targetInsecure: cli.Bool(fs, "Skip verifying server certs for HTTPS target registry (plain HTTP allowed)", "target-insecure"),
		platform:       cli.String(fs, "", "Platform of the manifest to check, e.g. linux/amd64 (default linux/<host arch>)", "platform"),
		workDir:        cli.String(fs, "", "Working directory for the chunk cache (default the system temporary directory)", "work-dir"),
	}
	o.quiet = cli.Bool(fs, "Show no progress (bars on a terminal, periodic lines elsewhere)", "quiet", "q")
	compatFlags(fs, "nydus-image", "nydusd")
	o.refused = registerRefused(fs, checkRefused)
	c := &cli.Command{Name: "check", Flags: fs,
		Usage: "check --target REF [--source REF] [OPTIONS]\nVerify nydus image format and content"}
	c.Run = func([]string) error { return o.run(c.Log) }
	return c
}

func (o *checkOpts) run(log *cli.Log) error {
	if err := o.refused(); err != nil {
		return err
	}
	if *o.target == "" {
		return usagef("--target is required")
	}
	opts := []convert.Option{
		convert.WithSource(convert.Remote{Insecure: *o.sourceInsecure}),
		convert.WithTarget(convert.Remote{Insecure: *o.targetInsecure}),
	}
	if *o.platform != "" {
		opts = append(opts, convert.WithPlatform(*o.platform))
	}
	if *o.workDir != "" {
		opts = append(opts, convert.WithWorkDir(*o.workDir))
	}
	ctx, cancel := signalContext()
	defer cancel()
	var rep *convert.Report
	err := withProgress(log, *o.quiet, func(p convert.Progress) (err error) {
		rep, err = convert.Check(ctx, *o.target, *o.source, append(opts, convert.WithProgress(p))...)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s: ok (%s layout, %d blobs, %d paths, %d bytes of file data verified, source compared: %v)\n",
		rep.Ref, rep.Manifest, rep.Layout, rep.Blobs, rep.Paths, rep.DataBytes, rep.Compared)
	return nil
}
