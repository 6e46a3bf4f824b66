// Command docker-nydus-graphdriver is a Docker graphdriver plugin:
// `dockerd --experimental --storage-driver nydus` finds it on
// /run/docker/plugins/nydus.sock. Ordinary layers are kept as overlay2
// keeps them; nydus images run lazily through nydusd.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/graphdriver"
)

var version = "dev"

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("docker-nydus-graphdriver", flag.ContinueOnError)
	socket := cli.String(fs, "/run/docker/plugins/nydus.sock", "Plugin socket (its base name is the storage driver's name)", "socket", "s")
	nydusd := cli.String(fs, "nydusd", "nydusd binary serving nydus layers", "nydusd")
	config := cli.String(fs, "", "nydusd configuration (JSON v1) nydus layers start from: credentials, cache, validation", "nydusd-config", "C")
	state := cli.String(fs, "/var/lib/docker-nydus-graphdriver/state.json", "Where Init's home and id maps are kept for a restarted plugin", "state-file")
	logLevel := cli.String(fs, "info", "Log level: debug, info, warn, error", "log-level", "l")
	logFormat := cli.String(fs, "text", "Log record format: text or json", "log-format")
	var insecure cli.StringList
	cli.Register(fs, &insecure, "Registry (host[:port]) an image's backend.json may name over plain HTTP or unverified TLS; repeatable (loopback is always allowed)", "insecure-registry")
	showVersion := cli.Bool(fs, "Print the version and exit", "version", "V")
	if _, err := cli.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
		return 2
	}
	if *showVersion {
		fmt.Println("docker-nydus-graphdriver", version)
		return 0
	}
	logs, err := cli.NewLog(cli.WithLogLevel(*logLevel), cli.WithLogFormat(*logFormat))
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
		return 2
	}
	log := logs.Logger()
	slog.SetDefault(log)
	opts := []graphdriver.Option{graphdriver.WithNydusd(*nydusd), graphdriver.WithLogger(log), graphdriver.WithStateFile(*state), graphdriver.WithInsecureRegistries(insecure...)}
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
	if err := os.MkdirAll(filepath.Dir(*socket), 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
		return 1
	}
	os.Remove(*socket) // a stale socket of a previous run
	l, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
		return 1
	}
	if err := os.Chmod(*socket, 0o660); err != nil {
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
	err = drv.Handler().Serve(l)
	os.Remove(*socket)
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "docker-nydus-graphdriver:", err)
		return 1
	}
	return 0
}
