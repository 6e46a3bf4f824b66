// Command nydusd serves RAFS v6 (Nydus) images over FUSE, lazily pulling
// and verifying their data. Its command line, configuration files and
// HTTP API follow upstream nydusd, so nydus-snapshotter and the Docker
// graphdriver can start it unchanged.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
)

var version = "dev"

type options struct {
	apisock, configPath, id, supervisor, logLevel, logFile *string
	mountpoint, failover, threads, bootstrap, localfsDir   *string
	prefetchFiles, virtualMountpoint, rlimit, rotation     *string
	uring                                                  *string
	writable, readonly, upgrade, version                   *bool
	refused                                                []refusedFlag
}

func flags() (*flag.FlagSet, *options) {
	fs := flag.NewFlagSet("nydusd", flag.ContinueOnError)
	o := &options{
		apisock:           cli.String(fs, "", "Path of the HTTP API unix socket", "apisock", "A"),
		configPath:        cli.String(fs, "", "Configuration file (JSON v1 or v2)", "config", "C"),
		id:                cli.String(fs, "", "Daemon id (with --supervisor)", "id"),
		supervisor:        cli.String(fs, "", "Supervisor socket for failover (with --id)", "supervisor"),
		logLevel:          cli.String(fs, "info", "Log level: trace, debug, info, warn, error", "log-level", "l"),
		logFile:           cli.String(fs, "", "Log file (\".log\" appended without extension; reopened on SIGHUP)", "log-file", "L"),
		rotation:          cli.String(fs, "0", "Rotate --log-file when it would grow past this many MB (0: never); 5 rotated files are kept", "log-rotation-size"),
		rlimit:            cli.String(fs, "1000000", "RLIMIT_NOFILE to set (0 leaves it)", "rlimit-nofile"),
		upgrade:           cli.Bool(fs, "Start in INIT and wait for PUT /api/v1/daemon/fuse/takeover (live upgrade; needs --supervisor)", "upgrade"),
		mountpoint:        cli.String(fs, "", "FUSE mountpoint", "mountpoint", "M"),
		failover:          cli.String(fs, "resend", "Failover policy: none, resend, flush", "failover-policy"),
		threads:           cli.String(fs, "4", "FUSE worker threads (1..1024)", "fuse-threads", "thread-num"),
		writable:          cli.Bool(fs, "Mount read-write (needs an overlay configuration)", "writable"),
		readonly:          cli.Bool(fs, "Mount read-only (the default)", "readonly"),
		bootstrap:         cli.String(fs, "", "RAFS bootstrap to mount at the root", "bootstrap", "B"),
		localfsDir:        cli.String(fs, "", "Serve blobs from this directory (localfs backend; conflicts with --config)", "localfs-dir", "D"),
		prefetchFiles:     cli.String(fs, "", "Absolute paths in the image to prefetch (files or directories), separated by spaces, newlines or commas", "prefetch-files"),
		virtualMountpoint: cli.String(fs, "/", "Where the bootstrap appears inside the mount", "virtual-mountpoint", "m"),
		uring:             cli.String(fs, "off", "FUSE over io_uring: off (the default: /dev/fuse only), auto (when the kernel offers it: fuse.enable_uring=Y), on (turns enable_uring on if needed; fails without io_uring). Warm reads ~1.0x the kernel EROFS mount against ~0.6x over /dev/fuse; off by default until it has a long record (see docs/design/fuse-io-uring.md)", "fuse-io-uring"),
	}
	// nydus-snapshotter may pass --backend-source; accept and ignore it.
	cli.String(fs, "", "Accepted for compatibility", "backend-source")
	o.version = cli.Bool(fs, "Print the version", "version", "V")
	o.refused = []refusedFlag{
		{cli.String(fs, "", "Directory to share through passthroughfs (refused: not implemented)", "shared-dir", "s"),
			"--shared-dir: passthroughfs (sharing a host directory) is not implemented; only RAFS images are served"},
		{cli.String(fs, "", "Chunk deduplication database (refused: not implemented)", "dedup-db"),
			"--dedup-db: the chunk deduplication database (upstream's dedup feature) is not implemented"},
	}
	// Options of the refused subcommands, parsed so that the refusal
	// names the subcommand rather than an unknown option.
	cli.String(fs, "", "virtiofs, uffd: vhost-user or uffd socket (refused with the subcommand)", "sock", "S")
	cli.Bool(fs, "virtiofs: RAFS and passthroughfs together (refused with the subcommand)", "hybrid-mode")
	cli.String(fs, "", "singleton: fscache working directory (refused with the subcommand)", "fscache", "F")
	cli.String(fs, "", "singleton: fscache daemon tag (refused with the subcommand)", "fscache-tag")
	cli.String(fs, "4", "singleton: fscache worker threads (refused with the subcommand)", "fscache-threads")
	cli.String(fs, "4", "nbd, uffd: worker threads (refused with the subcommand)", "threads")
	return fs, o
}

// refusedFlag is an upstream option nydusd parses but does not implement.
type refusedFlag struct {
	value  *string
	reason string
}

// refusedSubcommands are upstream's nydusd subcommands besides fuse.
var refusedSubcommands = map[string]string{
	"singleton": "the fscache/blobcache service (EROFS over fscache) is not implemented; run 'nydusd fuse', or mount 'nydus-image export --block' output with the kernel",
	"virtiofs":  "the vhost-user virtio-fs server is not implemented; run 'nydusd fuse'",
	"nbd":       "the NBD block device service is not implemented; use 'nydus-image export --block' and a loop device",
	"uffd":      "the userfaultfd block service is not implemented; use 'nydus-image export --block' and a loop device",
}

func main() {
	// NYDUSD_CPUPROFILE=FILE writes a CPU profile until exit (performance work).
	if p := os.Getenv("NYDUSD_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil && pprof.StartCPUProfile(f) == nil {
			code := run(os.Args[1:])
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs, o := flags()
	fs.SetOutput(io.Discard)
	help := cli.Bool(fs, "Print help", "help", "h")
	// Global options may come before the subcommand, the rest after it.
	pos, err := cli.Parse(fs, args)
	if *help || errors.Is(err, flag.ErrHelp) {
		cli.PrintUsage(os.Stdout, &cli.Command{Program: "nydusd", Usage: "[fuse] [OPTIONS]", Flags: fs})
		return 0
	}
	if err == nil && *o.version {
		printVersion(os.Stdout)
		return 0
	}
	if err == nil && len(pos) > 0 {
		if reason, ok := refusedSubcommands[pos[0]]; ok {
			fmt.Fprintf(os.Stderr, "nydusd: the %s subcommand is refused: %s\n", pos[0], reason)
			return 2
		}
		if pos[0] == "fuse" {
			pos = pos[1:]
		}
	}
	if err == nil && len(pos) > 0 {
		err = fmt.Errorf("unexpected arguments %q", pos)
	}
	for _, r := range o.refused {
		if err == nil && *r.value != "" {
			err = fmt.Errorf("%s (refused)", r.reason)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nydusd: %v\n", err)
		return 2
	}
	level := new(slog.LevelVar)
	closeLog, err := setupLog(*o.logLevel, *o.logFile, *o.rotation, level)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nydusd: %v\n", err)
		return 2
	}
	defer closeLog()
	if err := serve(o, level); err != nil {
		slog.Error("nydusd failed", "err", err)
		fmt.Fprintf(os.Stderr, "nydusd: %v\n", err)
		return 1
	}
	return 0
}

func setupLog(levelName, file, rotationMB string, level *slog.LevelVar) (func(), error) {
	l, err := cli.ParseLevel(levelName)
	if err != nil {
		return nil, err
	}
	level.Set(l)
	rotateAt, err := cli.ParseRotationMB(rotationMB)
	if err != nil {
		return nil, err
	}
	if file == "" {
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
		return func() {}, nil
	}
	if filepath.Ext(file) == "" {
		file += ".log"
	}
	f, err := cli.OpenLogFile(file, rotateAt)
	if err != nil {
		return nil, err
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: level})))
	// logrotate's copy-less rotation: rename, then SIGHUP.
	stop := cli.ReopenOnHangup(f, slog.Default())
	return func() { stop(); f.Close() }, nil
}

func loadConfig(o *options) (*config.Config, error) {
	switch {
	case *o.configPath != "" && *o.localfsDir != "":
		return nil, errors.New("--localfs-dir conflicts with --config")
	case *o.localfsDir != "":
		settings, _ := json.Marshal(map[string]string{"dir": *o.localfsDir})
		return config.Parse([]byte(fmt.Sprintf(`{"version":2,"backend":{"type":"localfs","localfs":%s},"cache":{"type":"filecache","filecache":{"work_dir":%q}},"rafs":{"enable_xattr":true}}`,
			settings, *o.localfsDir)))
	case *o.configPath != "":
		return config.Load(*o.configPath)
	}
	return nil, nil
}

func serve(o *options, level *slog.LevelVar) error {
	if *o.mountpoint == "" {
		return errors.New("--mountpoint is required")
	}
	if (*o.id == "") != (*o.supervisor == "") {
		return errors.New("--id and --supervisor go together")
	}
	threads, err := strconv.Atoi(*o.threads)
	if err != nil || threads < 1 || threads > 1024 {
		return fmt.Errorf("invalid --fuse-threads %q (1..1024)", *o.threads)
	}
	switch *o.failover {
	case "none", "resend", "flush":
	default:
		return fmt.Errorf("invalid --failover-policy %q", *o.failover)
	}
	if n, err := strconv.ParseUint(*o.rlimit, 10, 64); err == nil && n > 0 {
		var lim syscall.Rlimit
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
		lim.Cur = min(n, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			slog.Warn("could not raise RLIMIT_NOFILE", "want", n, "err", err)
		}
	}
	cfg, err := loadConfig(o)
	if err != nil {
		return err
	}
	if *o.writable && *o.readonly {
		return errors.New("--writable conflicts with --readonly")
	}
	if *o.writable && (cfg == nil || cfg.Overlay == nil || *o.bootstrap == "") {
		return errors.New(`--writable needs --bootstrap and an "overlay" section (upper_dir, work_dir) in the config`)
	}
	uring, err := daemon.ParseURingMode(*o.uring)
	if err != nil {
		return fmt.Errorf("--fuse-io-uring: %w", err)
	}
	d := daemon.New(daemon.Options{ID: *o.id, Supervisor: *o.supervisor, Version: version, Logger: slog.Default(), Writable: *o.writable,
		URing: uring, FailoverPolicy: *o.failover})
	// A successor waits in INIT for its predecessor's session: started
	// for a live upgrade, or after a crash (nydus-snapshotter restarts a
	// dead daemon with its command line unchanged: the FUSE mount and the
	// API socket file are still there).
	takeover := *o.upgrade
	if !takeover && *o.supervisor != "" && crashed(*o.mountpoint, *o.apisock) {
		slog.Info("the FUSE mount and a dead API socket are there: waiting in INIT for a takeover", "mountpoint", *o.mountpoint)
		takeover = true
	}
	if takeover && *o.apisock == "" {
		return errors.New("--upgrade needs --apisock (the takeover is asked for through the API)")
	}
	if !takeover && *o.bootstrap != "" {
		if cfg == nil {
			return errors.New("--bootstrap needs --config or --localfs-dir")
		}
		files, err := prefetchList(*o.prefetchFiles)
		if err != nil {
			return err
		}
		if err := d.AddMount(*o.virtualMountpoint, *o.bootstrap, cfg, files...); err != nil {
			return err
		}
	}
	stop := make(chan os.Signal, 2)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	exit := make(chan struct{}, 1)
	var api *daemon.API
	if *o.apisock != "" {
		api = daemon.NewAPI(d, level, func() { exit <- struct{}{} })
		if err := api.Serve(*o.apisock); err != nil {
			return err
		}
		defer api.Close()
	}
	if takeover {
		d.SetThreads(threads)
	} else {
		if err := d.Start(*o.mountpoint, nil, threads); err != nil {
			return err
		}
		if err := cli.NotifyReady(); err != nil {
			slog.Warn("systemd readiness", "err", err)
		}
		slog.Info("nydusd running", "mountpoint", *o.mountpoint, "bootstrap", *o.bootstrap, "apisock", *o.apisock)
	}
	ended := make(chan struct{})
	go func() { d.Wait(); close(ended) }()
	select {
	case sig := <-stop:
		slog.Info("stopping", "signal", sig.String())
	case <-ended:
		slog.Info("FUSE session ended")
	case <-exit:
		// PUT /api/v1/daemon/exit: a successor serves the session.
		slog.Info("exiting without unmounting: a successor takes the session over", "mountpoint", *o.mountpoint)
		return nil
	}
	return d.Stop()
}

// crashed reports a predecessor's crash: the mountpoint is in the mount
// table and the API socket file exists but nobody answers on it. Call it
// before listening on the socket. The mountpoint itself is not touched:
// nobody serves it.
func crashed(mountpoint, apisock string) bool {
	if apisock == "" || !daemon.Mounted(mountpoint) {
		return false
	}
	if _, err := os.Stat(apisock); err != nil {
		return false
	}
	c, err := net.DialTimeout("unix", apisock, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// prefetchList splits --prefetch-files: absolute paths inside the image,
// as upstream nydusd takes them (nydus-snapshotter passes its prefetch
// list as one value). Nil when empty: the image's prefetch table applies.
func prefetchList(v string) ([]string, error) {
	files := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	for _, f := range files {
		if !strings.HasPrefix(f, "/") {
			return nil, fmt.Errorf("--prefetch-files: %q is not an absolute path in the image", f)
		}
	}
	if len(files) == 0 {
		return nil, nil
	}
	return files, nil
}

// printVersion writes upstream nydusd's -V layout: nydus-snapshotter reads
// the "Git Commit:" line and compares it with the API's
// version.git_commit before it takes over running daemons.
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "Version:    \t%s\nGit Commit: \t%s\nBuild Time: \t\nProfile:    \trelease\nRustc:      \tgo (gonydus)\n", version, version)
}
