// Command nydus-image builds, merges, checks, inspects, unpacks and exports
// RAFS v6 (Nydus) images. Its subcommands and flags follow upstream
// nydus-image wherever they share a name, so nydus-snapshotter's converter
// and BuildKit can run it unchanged.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/gonydus/nydus/cmd/internal/cli"
)

var version = "dev"

// globals are the options every subcommand accepts.
type globals struct {
	logLevel, logFile, logFormat *string
}

func addGlobals(fs *flag.FlagSet) *globals {
	return &globals{
		logLevel:  cli.String(fs, "info", "Log level: trace, debug, info, warn, error", "log-level", "l"),
		logFile:   cli.String(fs, "", "Log file path (\".log\" is appended when it has no extension)", "log-file", "L"),
		logFormat: cli.String(fs, "text", "Log record format: text or json", "log-format"),
	}
}

// setup sets up the log handler the global flags describe and makes it
// slog's default.
func (g *globals) setup() (*cli.Log, error) {
	l, err := cli.NewLog(cli.WithLogLevel(*g.logLevel), cli.WithLogFormat(*g.logFormat), cli.WithLogFile(*g.logFile, true))
	if err != nil {
		return nil, err
	}
	slog.SetDefault(l.Logger())
	return l, nil
}

func commands() []*cli.Command {
	return []*cli.Command{newCreate(), newMerge(), newCheck(), newInspect(), newUnpack(), newExport(),
		newStat(), newCompact(), newOptimize(), newChunkdict()}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "nydus-image %s: build and manage RAFS v6 (Nydus) images\n\nUsage: nydus-image <command> [options]\n\nCommands:\n", version)
	for _, c := range commands() {
		desc := strings.Split(c.Usage, "\n")
		fmt.Fprintf(w, "  %-10s %s\n", c.Name, desc[min(1, len(desc)-1)])
	}
	fmt.Fprintf(w, "\nRun 'nydus-image <command> --help' for a command's options.\n")
}

func main() {
	// NYDUS_IMAGE_CPUPROFILE=FILE writes a CPU profile (for performance work).
	if p := os.Getenv("NYDUS_IMAGE_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				code := run(os.Args[1:])
				pprof.StopCPUProfile()
				f.Close()
				os.Exit(code)
			}
		}
	}
	os.Exit(run(os.Args[1:]))
}

// hoistGlobals moves the global options given before the subcommand
// (nydus-image --log-level warn create …, as clap allows) after it.
func hoistGlobals(args []string) []string {
	var globals []string
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		name, _, hasValue := strings.Cut(strings.TrimLeft(args[i], "-"), "=")
		if name != "log-level" && name != "l" && name != "log-file" && name != "L" && name != "log-format" {
			break
		}
		globals = append(globals, args[i])
		i++
		if !hasValue && i < len(args) {
			globals = append(globals, args[i])
			i++
		}
	}
	rest := args[i:]
	if len(globals) == 0 || len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
		return append(append([]string{}, rest...), globals...)
	}
	return append(append([]string{rest[0]}, globals...), rest[1:]...)
}

func run(args []string) int {
	args = hoistGlobals(args)
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(os.Stdout)
		return 0
	case "-V", "--version", "version":
		fmt.Printf("nydus-image %s (gonydus)\n", version)
		return 0
	}
	for _, c := range commands() {
		if c.Name != args[0] {
			continue
		}
		c.Program = "nydus-image"
		c.Flags.SetOutput(io.Discard)
		help := cli.Bool(c.Flags, "Print help", "help", "h")
		g := addGlobals(c.Flags)
		pos, err := cli.Parse(c.Flags, args[1:])
		if *help || errors.Is(err, flag.ErrHelp) {
			cli.PrintUsage(os.Stdout, c)
			return 0
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "nydus-image %s: %v\n", c.Name, err)
			return 2
		}
		log, err := g.setup()
		if err != nil {
			fmt.Fprintf(os.Stderr, "nydus-image %s: %v\n", c.Name, err)
			return 2
		}
		defer log.Close() //nolint:revive // the loop returns in this iteration: it runs one command
		c.Log = log
		if err := c.Run(pos); err != nil {
			fmt.Fprintf(os.Stderr, "nydus-image %s: %v\n", c.Name, err)
			slog.Error("command failed", "command", c.Name, "err", err)
			var ue usageError
			if errors.As(err, &ue) {
				return 2
			}
			if errors.Is(err, errInconsistent) {
				return 2
			}
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "nydus-image: unknown command %q\n", args[0])
	usage(os.Stderr)
	return 2
}

// usageError marks a bad command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// errInconsistent marks an inconsistent filesystem (merge exits 2, as upstream).
var errInconsistent = errors.New("inconsistent filesystem")
