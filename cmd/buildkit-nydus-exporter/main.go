// Command buildkit-nydus-exporter is a BuildKit daemon (buildkitd's gRPC
// API, the OCI/runc worker with the overlayfs snapshotter, the built-in
// Dockerfile frontend) whose worker also knows the exporter type "nydus":
//
//	docker buildx create --name nydus --driver remote unix:///run/buildkit-nydus/buildkitd.sock
//	docker buildx build --builder nydus --output type=nydus,name=REG/APP:TAG,push=true .
//
// It reads buildkitd's TOML configuration (--config); the image, oci, tar,
// local and docker exporters work as in upstream buildkitd. See the
// exporter package for type=nydus's attributes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/sirupsen/logrus"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/cmd/internal/cli/logrusbridge"
)

var version = "dev"

func main() {
	var (
		cfgPath  = flag.String("config", "/etc/buildkit-nydus/buildkitd.toml", "buildkitd TOML configuration file (missing: defaults)")
		root     = flag.String("root", "", "state directory (overrides the configuration's root; default /var/lib/buildkit-nydus)")
		addr     = flag.String("addr", "", "listening address, unix:///path, tcp://host:port or fd:// (systemd socket activation) (overrides the configuration's grpc.address)")
		cacheDir = flag.String("nydus-cache-dir", "", "where converted layers are cached (default <root>/nydus-cache)")
		cacheAge = flag.Duration("nydus-cache-max-age", 7*24*time.Hour, "remove converted layers unused for this long (checked at start and hourly; 0 keeps them)")
		tlsCert  = flag.String("tlscert", "", "TLS certificate of tcp:// listeners (overrides grpc.tls.cert)")
		tlsKey   = flag.String("tlskey", "", "TLS key of tcp:// listeners (overrides grpc.tls.key)")
		tlsCA    = flag.String("tlscacert", "", "CA that signs client certificates; clients must present one (overrides grpc.tls.ca)")
		insecure = flag.Bool("allow-insecure-tcp", false, "serve tcp:// addresses without TLS (anyone who reaches the port can build as root)")
		debug    = flag.Bool("debug", false, "debug logs")
		logFmt   = flag.String("log-format", "text", "log record format: text or json (BuildKit's logrus records are written in the same format)")
		logFile  = flag.String("log-file", "", "append log records to this file instead of stderr (reopened on SIGHUP)")
		rotation = flag.String("log-rotation-size", "0", "rotate -log-file when it would grow past this many MB (0: never); 5 rotated files are kept")
		showVer  = flag.Bool("version", false, "print the version and exit")
	)
	flag.Parse()
	if *showVer {
		fmt.Println("buildkit-nydus-exporter", version)
		return
	}
	log, err := setupLog(*debug, *logFmt, *logFile, *rotation)
	if err != nil {
		fmt.Fprintf(os.Stderr, "buildkit-nydus-exporter: %v\n", err)
		os.Exit(2)
	}
	defer log.Close()
	stopReopen := log.ReopenOnHangup()
	defer stopReopen()

	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fail(err)
	}
	if *root != "" {
		cfg.Root = *root
	}
	if *addr != "" {
		cfg.GRPC.Address = []string{*addr}
	}
	// buildkitd's flags override [grpc.tls].
	type override struct{ flag, field *string }
	for _, o := range []override{{tlsCert, &cfg.GRPC.TLS.Cert}, {tlsKey, &cfg.GRPC.TLS.Key}, {tlsCA, &cfg.GRPC.TLS.CA}} {
		if *o.flag != "" {
			*o.field = *o.flag
		}
	}
	setDefaults(&cfg)
	if *cacheDir == "" {
		*cacheDir = filepath.Join(cfg.Root, "nydus-cache")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &cfg, *cacheDir, *cacheAge, *insecure); err != nil {
		fail(err)
	}
}

// setupLog makes one handler the destination of both slog's default
// logger and logrus's standard logger (BuildKit and containerd log
// through it), so stderr (or the log file) carries one stream in one
// format.
func setupLog(debug bool, format, file, rotationMB string) (*cli.Log, error) {
	level := "info"
	if debug {
		level = "debug"
	}
	rotateAt, err := cli.ParseRotationMB(rotationMB)
	if err != nil {
		return nil, err
	}
	l, err := cli.NewLog(cli.WithLogLevel(level), cli.WithLogFormat(format), cli.WithLogFile(file, false), cli.WithLogRotation(rotateAt))
	if err != nil {
		return nil, err
	}
	slog.SetDefault(l.Logger())
	logrusbridge.Install(logrus.StandardLogger(), l.Handler())
	return l, nil
}

// loadConfig reads buildkitd's configuration; a missing file means defaults.
func loadConfig(path string) (config.Config, error) {
	cfg, err := config.LoadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "buildkit-nydus-exporter: %v\n", err)
	os.Exit(1)
}
