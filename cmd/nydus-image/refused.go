package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/gonydus/nydus/cmd/internal/cli"
)

// refusedFlag is an upstream option this nydus-image parses but does not
// implement: any value but the default is refused with the reason.
type refusedFlag struct {
	value  any // *string or *bool
	def    string
	reason string
}

type refusedFlags []refusedFlag

// check returns a usage error naming the reason for the first refused
// option given a value other than its default.
func (r refusedFlags) check() error {
	for _, f := range r {
		var v string
		switch p := f.value.(type) {
		case *string:
			v = *p
		case *bool:
			v = fmt.Sprint(*p)
		}
		if v != f.def {
			return usagef("%s (refused)", f.reason)
		}
	}
	return nil
}

// refusedCommand is an upstream subcommand this nydus-image does not
// implement: its options parse as upstream's, and running it fails with
// the reason.
func refusedCommand(name, usage, reason string, register func(fs *flag.FlagSet)) *cli.Command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	register(fs)
	return &cli.Command{Name: name, Flags: fs, Usage: usage + "\n" + "Refused: " + reason,
		Run: func([]string) error { return fmt.Errorf("%w: %s", errRefused, reason) }}
}

// errRefused marks a subcommand or option this nydus-image does not
// implement.
var errRefused = fmt.Errorf("not implemented by this nydus-image")

func newStat() *cli.Command {
	return refusedCommand("stat", "stat [OPTIONS]",
		"chunk deduplication statistics over bootstraps are not implemented; 'inspect' prints an image's summary",
		func(fs *flag.FlagSet) {
			cli.String(fs, "", "Bootstrap to analyse", "bootstrap", "B")
			cli.String(fs, "", "Directory of bootstraps to analyse", "blob-dir", "D")
			cli.String(fs, "", "Bootstrap to analyse after deduplication", "target", "T")
			cli.String(fs, "", "Storage backend configuration", "config", "C")
			cli.String(fs, "blake3", "Chunk digester: blake3, sha256", "digester")
			cli.String(fs, "", "JSON file to write the statistics to", "output-json", "J")
		})
}

func newCompact() *cli.Command {
	return refusedCommand("compact", "compact [OPTIONS] --bootstrap BOOTSTRAP --blob-dir DIR",
		"rewriting blobs to drop unused chunks and merge small blobs is not implemented",
		func(fs *flag.FlagSet) {
			cli.String(fs, "", "Bootstrap to compact", "bootstrap", "B")
			backendFlagNames(fs)
			cli.String(fs, "", "Lower bound of used ratio for blobs to keep (0-99)", "min-used-ratio")
			cli.String(fs, "", "Upper bound of blob size for blobs to compact", "compact-blob-size")
			cli.String(fs, "", "Upper bound of compacted blob size", "max-compact-size")
			cli.String(fs, "", "Compact when at least this many blobs", "layers-to-compact")
			cli.String(fs, "", "Local blobs directory, also for output blobs", "blob-dir", "D")
			cli.String(fs, "", "Chunk dictionary", "chunk-dict")
			cli.String(fs, "", "Output bootstrap", "output-bootstrap", "O")
			cli.String(fs, "", "JSON file to write the result to", "output-json", "J")
		})
}

func newOptimize() *cli.Command {
	return refusedCommand("optimize", "optimize [OPTIONS] --bootstrap BOOTSTRAP",
		"rebuilding blobs ordered by a prefetch list is not implemented; build with --prefetch-policy fs instead",
		func(fs *flag.FlagSet) {
			cli.String(fs, "", "Bootstrap to optimize", "bootstrap", "B")
			cli.String(fs, "", "File listing the files to prefetch", "prefetch-files", "p")
			cli.String(fs, "", "Storage backend configuration", "config", "C")
			backendFlagNames(fs)
			cli.String(fs, "", "Directory of blobs (localfs)", "blob-dir", "D")
			cli.String(fs, "", "Blob file", "blob", "b")
			cli.String(fs, "", "Output bootstrap", "output-bootstrap", "O")
			cli.String(fs, "", "Directory for the optimized blob", "output-blob-dir")
			cli.String(fs, "", "JSON file to write the result to", "output-json", "J")
		})
}

func newChunkdict() *cli.Command {
	return refusedCommand("chunkdict", "chunkdict generate [OPTIONS] SOURCE...",
		"generating a chunk dictionary needs upstream's SQLite chunk database, which is not implemented; "+
			"pass an existing image as 'create --chunk-dict bootstrap=PATH'",
		func(fs *flag.FlagSet) {
			cli.String(fs, "sqlite:///home/runner/output/database.db", "Chunk database address", "database")
			cli.String(fs, "", "Output bootstrap", "bootstrap", "B")
			cli.String(fs, "", "Directory for the generated blobs", "blob-dir", "D")
			cli.String(fs, "none", "Prefetch policy: fs, blob, none", "prefetch-policy")
			cli.String(fs, "", "JSON file to write the result to", "output-json", "J")
			cli.String(fs, "", "Storage backend configuration", "config", "C")
			cli.Bool(fs, "Verbose output", "verbose", "v")
		})
}

// backendFlagNames registers upstream's backend options of compact and
// optimize (parsed only: those subcommands are refused).
func backendFlagNames(fs *flag.FlagSet) {
	for _, n := range []string{"backend-type", "backend-config", "backend-config-file"} {
		cli.String(fs, "", "Storage backend "+strings.TrimPrefix(n, "backend-"), n)
	}
}
