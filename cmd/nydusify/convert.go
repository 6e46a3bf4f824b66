package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/convert"
	"github.com/gonydus/nydus/rafs/source"
)

type convertOpts struct {
	source, target, compressor, chunkSize, fsVersion, platform, workDir *string
	prefetchDir, targetSuffix                                           *string
	sourceInsecure, targetInsecure, dockerRunnable, oci, prefetchStdin  *bool
	ociRef                                                              *bool
	withReferrer, plainHTTP, quiet                                      *bool
	parallelism                                                         *int
	refused                                                             func() error
}

func newConvert() *cli.Command {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	o := &convertOpts{
		source:         cli.String(fs, "", "Source OCI image reference", "source"),
		target:         cli.String(fs, "", "Target (Nydus) image reference", "target"),
		targetSuffix:   cli.String(fs, "", "Generate the target image reference by adding a suffix to the source image reference, conflicts with --target", "target-suffix"),
		sourceInsecure: cli.Bool(fs, "Skip verifying server certs for HTTPS source registry (plain HTTP allowed)", "source-insecure"),
		targetInsecure: cli.Bool(fs, "Skip verifying server certs for HTTPS target registry (plain HTTP allowed)", "target-insecure"),
		compressor:     cli.String(fs, "zstd", "Algorithm to compress image data blob, possible values: none, lz4_block, zstd", "compressor"),
		chunkSize:      cli.String(fs, "0x100000", "Size of nydus image data chunk, power of two between 0x1000 and 0x1000000", "fs-chunk-size", "chunk-size"),
		fsVersion:      cli.String(fs, "6", "Nydus image format version number (only 6 is written)", "fs-version"),
		platform:       cli.String(fs, "", "Platform of a multi-platform source to convert, e.g. linux/amd64 (default linux/<host arch>)", "platform"),
		workDir:        cli.String(fs, "", "Working directory for data blobs between build and push (default the system temporary directory)", "work-dir"),
		ociRef:         cli.Bool(fs, "Convert to an OCI-ref (zran) image: reference the source's gzip layers instead of copying their data", "oci-ref"),
		dockerRunnable: cli.Bool(fs, "Write the docker-runnable layout: only the bootstrap layer in the manifest, data blobs beside it in the repository", "docker-runnable"),
		oci:            cli.Bool(fs, "Convert Docker media types to OCI media types", "oci"),
		prefetchDir:    cli.String(fs, "", "Specify an absolute path within the image for prefetch (default: everything)", "prefetch-dir"),
		prefetchStdin:  cli.Bool(fs, "Read prefetch list from STDIN, please input absolute paths line by line", "prefetch-patterns"),
		withReferrer:   cli.Bool(fs, "Associate a reference to the source image (manifest subject, for the referrers API)", "with-referrer"),
	}
	o.plainHTTP = cli.Bool(fs, "Push the Nydus image over plain HTTP (as --target-insecure: TLS checks off, HTTP allowed)", "plain-http")
	o.quiet = cli.Bool(fs, "Show no progress (bars on a terminal, periodic lines elsewhere)", "quiet", "q")
	o.parallelism = fs.Int("parallelism", 0, "Layers converted at once (default min(4, CPUs))")
	compatFlags(fs, "nydus-image")
	o.refused = registerRefused(fs, convertRefused)
	for _, a := range convertAccepted {
		cli.String(fs, a.def, a.usage, a.name)
	}
	for _, a := range convertAcceptedBools {
		cli.Bool(fs, a.usage, a.name)
	}
	c := &cli.Command{Name: "convert", Flags: fs,
		Usage: "convert --source REF --target REF [OPTIONS]\nGenerate a Nydus image from an OCI image"}
	c.Run = func([]string) error { return o.run(c.Log) }
	return c
}

func (o *convertOpts) options() ([]convert.Option, error) {
	if err := o.refused(); err != nil {
		return nil, err
	}
	if strings.Contains(*o.platform, ",") {
		return nil, usagef("--platform %q: one platform is converted per run (refused: several)", *o.platform)
	}
	switch {
	case *o.target != "" && *o.targetSuffix != "":
		return nil, usagef("--target and --target-suffix conflict")
	case *o.targetSuffix != "":
		*o.target = *o.source + *o.targetSuffix
	}
	if *o.source == "" || *o.target == "" {
		return nil, usagef("--source and --target (or --target-suffix) are required")
	}
	size, err := strconv.ParseUint(*o.chunkSize, 0, 32)
	if err != nil {
		return nil, usagef("invalid --fs-chunk-size %q: %v", *o.chunkSize, err)
	}
	opts := []convert.Option{
		convert.WithCompressor(*o.compressor), convert.WithChunkSize(uint32(size)), convert.WithFSVersion(*o.fsVersion),
		convert.WithSource(convert.Remote{Insecure: *o.sourceInsecure}),
		convert.WithTarget(convert.Remote{Insecure: *o.targetInsecure || *o.plainHTTP}),
		convert.WithOCI(*o.oci), convert.WithReferrer(*o.withReferrer), convert.WithOCIRef(*o.ociRef),
	}
	if *o.dockerRunnable {
		opts = append(opts, convert.WithLayout(convert.LayoutDockerRunnable))
	}
	if *o.platform != "" {
		opts = append(opts, convert.WithPlatform(*o.platform))
	}
	if *o.workDir != "" {
		opts = append(opts, convert.WithWorkDir(*o.workDir))
	}
	var prefetch []string
	if *o.prefetchDir != "" {
		prefetch = append(prefetch, *o.prefetchDir)
	}
	if *o.prefetchStdin {
		ps, err := source.ParsePrefetchPatterns(os.Stdin)
		if err != nil {
			return nil, usagef("--prefetch-patterns: %v", err)
		}
		prefetch = append(prefetch, ps...)
	}
	if len(prefetch) > 0 {
		opts = append(opts, convert.WithPrefetch(prefetch))
	}
	if *o.parallelism != 0 {
		opts = append(opts, convert.WithParallelism(*o.parallelism))
	}
	return opts, nil
}

func (o *convertOpts) run(log *cli.Log) error {
	opts, err := o.options()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var res *convert.Result
	err = withProgress(log, *o.quiet, func(p convert.Progress) error {
		res, err = convert.Convert(ctx, *o.source, *o.target, append(opts, convert.WithProgress(p))...)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Printf("%s@%s\n", res.Ref, res.Manifest.Digest)
	return nil
}
