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
)

var version = "dev"

func commands() []*cli.Command { return []*cli.Command{newConvert(), newCheck()} }

func usage(w io.Writer) {
	fmt.Fprintf(w, "nydusify %s: convert OCI images to Nydus images and check them\n\nUsage: nydusify <command> [options]\n\nCommands:\n", version)
	for _, c := range commands() {
		_, desc, _ := strings.Cut(c.Usage, "\n")
		fmt.Fprintf(w, "  %-8s %s\n", c.Name, desc)
	}
	fmt.Fprintf(w, "\nGlobal options (before or after the command): --debug/-D, --log-level/-l LEVEL, --log-file FILE\n")
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
		var closeLog func()
		if err == nil {
			closeLog, err = setupLog(g)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "nydusify %s: %v\n", c.Name, err)
			return 2
		}
		defer closeLog()
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

func setupLog(g *globalOpts) (func(), error) {
	var l slog.Level
	switch strings.ToLower(*g.logLevel) {
	case "trace", "debug":
		l = slog.LevelDebug
	case "info", "":
		l = slog.LevelInfo
	case "warn", "warning":
		l = slog.LevelWarn
	case "error", "fatal", "panic":
		l = slog.LevelError
	default:
		return nil, fmt.Errorf("invalid --log-level %q (want panic, fatal, error, warn, info, debug or trace)", *g.logLevel)
	}
	if *g.debug {
		l = slog.LevelDebug
	}
	var w io.Writer = os.Stderr
	closer := func() {}
	if *g.logFile != "" {
		f, err := openLogFile(*g.logFile)
		if err != nil {
			return nil, fmt.Errorf("open log file: %w", err)
		}
		w, closer = f, func() { f.Close() }
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})))
	return closer, nil
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
