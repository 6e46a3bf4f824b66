// Command docker-nydus-graphdriver is a Docker graphdriver plugin:
// `dockerd --experimental --storage-driver nydus` finds it on
// /run/docker/plugins/nydus.sock. Ordinary layers are kept as overlay2
// keeps them; nydus images run lazily through nydusd.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/daemon/spawn"
	"github.com/gonydus/nydus/graphdriver"
)

var version = "dev"

func main() { os.Exit(run(os.Args[1:])) }

// serveOverlayCmd is the subcommand the plugin runs itself as for a
// container layer in userspace mode: one process per mounted container
// root, outliving plugin restarts.
const serveOverlayCmd = "userspace-overlay"

// keeperCmd is the subcommand the plugin runs itself as to supervise one
// nydusd (spawn.KeeperMain), outliving plugin restarts too.
const keeperCmd = "supervise-nydusd"

// defaultRunDir is where nydusd API sockets and their keepers' sockets
// live (graphdriver.WithRuntimeDir's default).
const defaultRunDir = "/run/docker-nydus-graphdriver"

func run(args []string) int {
	if len(args) == 2 && args[0] == serveOverlayCmd {
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		if err := graphdriver.ServeUserspace(args[1], log); err != nil {
			fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
			return 1
		}
		return 0
	}
	if len(args) > 0 && args[0] == keeperCmd {
		return spawn.KeeperMain(args[1:])
	}
	if len(args) > 0 && args[0] == "upgrade" {
		return upgrade(args[1:])
	}
	fs := flag.NewFlagSet("docker-nydus-graphdriver", flag.ContinueOnError)
	socket := cli.String(fs, "/run/docker/plugins/nydus.sock", "Plugin socket (its base name is the storage driver's name), or fd:// for a socket systemd passes", "socket", "s")
	nydusd := cli.String(fs, "nydusd", "nydusd binary serving nydus layers", "nydusd")
	config := cli.String(fs, "", "nydusd configuration (JSON v1) nydus layers start from: credentials, cache, validation", "nydusd-config", "C")
	state := cli.String(fs, "/var/lib/docker-nydus-graphdriver/state.json", "Where Init's home and id maps are kept for a restarted plugin", "state-file")
	runDir := cli.String(fs, defaultRunDir, "Runtime directory: nydusd API sockets and their keepers' control sockets", "runtime-dir")
	logLevel := cli.String(fs, "info", "Log level: debug, info, warn, error", "log-level", "l")
	logFormat := cli.String(fs, "text", "Log record format: text or json", "log-format")
	logFile := cli.String(fs, "", "Append log records to this file instead of stderr (reopened on SIGHUP)", "log-file", "L")
	rotation := cli.String(fs, "0", "Rotate --log-file when it would grow past this many MB (0: never); 5 rotated files are kept", "log-rotation-size")
	var insecure cli.StringList
	cli.Register(fs, &insecure, "Registry (host[:port]) an image's backend.json may name over plain HTTP or unverified TLS; repeatable (loopback is always allowed)", "insecure-registry")
	defMode := "kernel"
	if v := os.Getenv("CONTAINER_LAYER"); v != "" {
		defMode = v // a managed plugin's setting (docker plugin set)
	}
	containerLayer := cli.String(fs, defMode, "How container layers are mounted: kernel (overlayfs, as overlay2), userspace (the userspace writable overlay over FUSE), auto (kernel where overlayfs mounts, userspace where it cannot); default $CONTAINER_LAYER or kernel; dockerd's --storage-opt container-layer=... overrides it", "container-layer")
	showVersion := cli.Bool(fs, "Print the version and exit", "version", "V")
	help := cli.Bool(fs, "Print help", "help", "h")
	fs.SetOutput(io.Discard)
	pos, err := cli.Parse(fs, args)
	if *help || errors.Is(err, flag.ErrHelp) {
		cli.PrintUsage(os.Stdout, &cli.Command{Program: "docker-nydus-graphdriver", Usage: "[OPTIONS]", Flags: fs})
		return 0
	}
	if err == nil && len(pos) > 0 {
		err = fmt.Errorf("unexpected arguments %q", pos)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "docker-nydus-graphdriver: %v\nTry 'docker-nydus-graphdriver --help'.\n", err)
		return 2
	}
	if *showVersion {
		fmt.Println("docker-nydus-graphdriver", version)
		return 0
	}
	maxLog, err := cli.ParseRotationMB(*rotation)
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
		return 2
	}
	logs, err := cli.NewLog(cli.WithLogLevel(*logLevel), cli.WithLogFormat(*logFormat), cli.WithLogFile(*logFile, false), cli.WithLogRotation(maxLog))
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
		return 2
	}
	defer logs.Close()
	stopReopen := logs.ReopenOnHangup()
	defer stopReopen()
	log := logs.Logger()
	slog.SetDefault(log)
	mode, err := graphdriver.ParseContainerLayer(*containerLayer)
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver: --container-layer:", err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
		return 1
	}
	opts := []graphdriver.Option{graphdriver.WithNydusd(*nydusd), graphdriver.WithLogger(log), graphdriver.WithStateFile(*state), graphdriver.WithInsecureRegistries(insecure...),
		graphdriver.WithContainerLayer(mode), graphdriver.WithOverlayServer(self, serveOverlayCmd), graphdriver.WithSupervisor(self, keeperCmd), graphdriver.WithRuntimeDir(*runDir)}
	if *config != "" {
		doc, err := os.ReadFile(*config)
		if err != nil {
			fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
			return 1
		}
		opts = append(opts, graphdriver.WithNydusdConfig(doc))
	}
	drv, err := graphdriver.New(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
		return 1
	}
	l, err := listenPlugin(*socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		// Mounts and nydusd processes stay: running containers keep their
		// root filesystems, and the next plugin process adopts them.
		log.Info("stopping", "signal", s.String())
		l.Close()
	}()
	log.Info("serving", "socket", *socket, "version", version)
	if err := cli.NotifyReady(); err != nil {
		log.Warn("systemd readiness", "err", err)
	}
	go explainSilence(drv, log)
	err = drv.Handler().Serve(l)
	cli.NotifyStopping()
	if *socket != cli.SocketActivated {
		os.Remove(*socket)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
		return 1
	}
	return 0
}

// upgrade is `docker-nydus-graphdriver upgrade --nydusd PATH`: every
// nydusd the plugin's keepers supervise moves to the binary PATH without
// unmounting, so running containers go on.
func upgrade(args []string) int {
	fs := flag.NewFlagSet("docker-nydus-graphdriver upgrade", flag.ContinueOnError)
	nydusd := cli.String(fs, "", "The new nydusd binary (required)", "nydusd")
	runDir := cli.String(fs, defaultRunDir, "The plugin's runtime directory, where the keepers' control sockets are", "runtime-dir")
	if _, err := cli.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver upgrade:", err)
		return 2
	}
	bin, err := filepath.Abs(*nydusd)
	if *nydusd == "" || err != nil {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver upgrade: --nydusd PATH is required")
		return 2
	}
	err = spawn.UpgradeAll(context.Background(), *runDir, bin, func(sock string, st spawn.Status, err error) {
		if err != nil {
			fmt.Printf("%s: FAILED: %v\n", sock, err)
			return
		}
		fmt.Printf("%s: nydusd %s (pid %d)\n", st.Mountpoint, st.Nydusd, st.PID)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver upgrade:", err)
		return 1
	}
	fmt.Println("done; restart the plugin with --nydusd", bin, "so that layers mounted from now on use it too")
	return 0
}

// explainSilence tells, when dockerd has not called Init within a while,
// what it found about the running dockerd: Docker 27 loads graphdriver
// plugins only with DOCKERD_DEPRECATED_GRAPHDRIVER_PLUGINS=1 in its
// environment, and Docker 28 not at all; dockerd itself never calls a
// plugin it refuses to load, so this is the only place to say so.
func explainSilence(drv *graphdriver.Driver, log *slog.Logger) {
	time.Sleep(20 * time.Second)
	if drv.InitCalled() {
		return
	}
	hints := graphdriver.CheckDockerd(context.Background(), "/proc")
	for _, h := range hints {
		log.Error("dockerd will not load this plugin", "reason", h)
	}
	if len(hints) == 0 {
		log.Warn("dockerd has not called the plugin yet; it needs --experimental and --storage-driver <socket name>, and Docker 27 also " + graphdriver.DeprecatedPluginsEnv + "=1 in its environment (Docker 28 removed graphdriver plugins)")
	}
}

// listenPlugin listens on the plugin socket path (mode 0660), or takes the
// socket systemd passed for fd:// (a .socket unit owns the path then).
func listenPlugin(socket string) (net.Listener, error) {
	if socket == cli.SocketActivated {
		return cli.ActivatedListener()
	}
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return nil, err
	}
	os.Remove(socket) // a stale socket of a previous run
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(socket, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
