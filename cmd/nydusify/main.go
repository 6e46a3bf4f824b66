// Command nydusify converts OCI and Docker images in a registry into Nydus
// (RAFS v6) images and checks pushed Nydus images. Its convert and check
// subcommands take upstream nydusify's flag names; the work is done by the
// convert package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/convert"
)

var version = "dev"

func commands() []*cli.Command { return []*cli.Command{newConvert(), newCheck()} }

func usage(w io.Writer) {
	fmt.Fprintf(w, "nydusify %s: convert OCI images to Nydus images and check them\n\nUsage: nydusify <command> [options]\n\nCommands:\n", version)
	for _, c := range commands() {
		_, desc, _ := strings.Cut(c.Usage, "\n")
		fmt.Fprintf(w, "  %-8s %s\n", c.Name, desc)
	}
	fmt.Fprintf(w, "\nGlobal options (before or after the command): --debug/-D, --log-level/-l LEVEL, --log-file FILE,\n  --log-format text|json\n")
	fmt.Fprintf(w, "Refused commands: mount (view), build (pack), copy, optimize, commit, chunkdict\n")
	fmt.Fprintf(w, "\nRun 'nydusify <command> --help' for a command's options.\n")
}

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	globalArgs, args := splitGlobals(args)
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(os.Stdout)
		return 0
	case "-v", "-V", "--version", "version":
		fmt.Printf("nydusify %s (gonydus)\n", version)
		return 0
	}
	if reason, ok := refusedCommands[args[0]]; ok {
		fmt.Fprintf(os.Stderr, "nydusify %s is refused: %s\n", args[0], reason)
		return 2
	}
	for _, c := range commands() {
		if c.Name != args[0] {
			continue
		}
		c.Program = "nydusify"
		c.Flags.SetOutput(io.Discard)
		help := cli.Bool(c.Flags, "Print help", "help", "h")
		g := addGlobals(c.Flags)
		pos, err := cli.Parse(c.Flags, append(globalArgs, args[1:]...))
		if *help || errors.Is(err, flag.ErrHelp) {
			cli.PrintUsage(os.Stdout, c)
			return 0
		}
		if err == nil && len(pos) > 0 {
			err = fmt.Errorf("unexpected argument %q", pos[0])
		}
		if err == nil {
			err = applyEnv(c.Flags, envVars[c.Name], os.Getenv)
		}
		if err == nil {
			err = applyEnv(c.Flags, globalEnv, os.Getenv)
		}
		var log *cli.Log
		if err == nil {
			log, err = setupLog(g)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "nydusify %s: %v\n", c.Name, err)
			return 2
		}
		defer log.Close() //nolint:revive // the loop returns in this iteration: it runs one command
		c.Log = log
		if err := c.Run(pos); err != nil {
			fmt.Fprintf(os.Stderr, "nydusify %s: %v\n", c.Name, err)
			var ue usageError
			if errors.As(err, &ue) {
				return 2
			}
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "nydusify: unknown command %q\n", args[0])
	usage(os.Stderr)
	return 2
}

// setupLog sets up the log handler of the global options and makes it
// slog's default.
func setupLog(g *globalOpts) (*cli.Log, error) {
	level := *g.logLevel
	if *g.debug {
		level = "debug"
	}
	l, err := cli.NewLog(cli.WithLogLevel(level), cli.WithLogFormat(*g.logFormat), cli.WithLogFile(*g.logFile, false))
	if err != nil {
		return nil, err
	}
	slog.SetDefault(l.Logger())
	return l, nil
}

// withProgress runs fn with the progress display of a command (none when
// quiet).
func withProgress(log *cli.Log, quiet bool, fn func(p convert.Progress) error) error {
	prog, end, err := cli.NewProgress(log, quiet)
	if err != nil {
		return err
	}
	defer end()
	return fn(prog)
}

// compatFlags accepts upstream flags naming helper binaries (scripts pass
// them), which this pure-Go nydusify does not need.
func compatFlags(fs *flag.FlagSet, names ...string) {
	for _, n := range names {
		cli.String(fs, "", "Accepted for upstream compatibility; unused (no helper binaries are run)", n)
	}
}

// signalContext is cancelled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// usageError marks a bad command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }
