package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/sys"
	"github.com/moby/buildkit/cache/remotecache"
	inlineremotecache "github.com/moby/buildkit/cache/remotecache/inline"
	localremotecache "github.com/moby/buildkit/cache/remotecache/local"
	registryremotecache "github.com/moby/buildkit/cache/remotecache/registry"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/control"
	"github.com/moby/buildkit/frontend"
	dockerfile "github.com/moby/buildkit/frontend/dockerfile/builder"
	"github.com/moby/buildkit/frontend/gateway"
	"github.com/moby/buildkit/frontend/gateway/forwarder"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/solver"
	"github.com/moby/buildkit/solver/bboltcachestorage"
	"github.com/moby/buildkit/util/apicaps"
	"github.com/moby/buildkit/util/db/boltutil"
	"github.com/moby/buildkit/util/grpcerrors"
	_ "github.com/moby/buildkit/util/grpcutil/encoding/proto" // buildkitd's gRPC codec
	"github.com/moby/buildkit/util/resolver"
	"github.com/moby/buildkit/worker"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthv1 "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/gonydus/nydus/cmd/internal/cli"
	nydusexporter "github.com/gonydus/nydus/exporter"
)

// run starts the controller and serves the BuildKit API until ctx ends.
// tcp:// listeners speak TLS ([grpc.tls]); one without TLS is refused
// unless insecureTCP.
func run(ctx context.Context, cfg *config.Config, cacheDir string, cacheAge time.Duration, insecureTCP bool) error {
	apicaps.ExportedProduct = "buildkit"
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return err
	}
	cfg.Root = root
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	tlsConfig, err := serverTLS(cfg.GRPC.TLS)
	if err != nil {
		return err
	}
	listeners, err := listen(cfg.GRPC, tlsConfig, insecureTCP)
	if err != nil {
		return err
	}
	ctrl, w, err := newController(ctx, cfg, cacheDir)
	if err != nil {
		closeAll(listeners)
		return err
	}
	defer ctrl.Close()
	if cacheAge > 0 {
		go pruneLoop(ctx, w.cache, cacheAge)
	}

	server := grpc.NewServer(
		grpc.ChainUnaryInterceptor(grpcerrors.UnaryServerInterceptor),
		grpc.StreamInterceptor(grpcerrors.StreamServerInterceptor),
		grpc.MaxRecvMsgSize(defaults.DefaultMaxRecvMsgSize),
		grpc.MaxSendMsgSize(defaults.DefaultMaxSendMsgSize),
	)
	healthv1.RegisterHealthServer(server, health.NewServer())
	ctrl.Register(server)

	errCh := make(chan error, len(listeners))
	for _, l := range listeners {
		slog.Info("serving the BuildKit API", "addr", l.Addr().String(), "root", root, "nydus_cache", cacheDir)
		go func() { errCh <- server.Serve(l) }()
	}
	if err := cli.NotifyReady(); err != nil {
		slog.Warn("systemd readiness", "err", err)
	}
	defer cli.NotifyStopping()
	select {
	case err = <-errCh:
	case <-ctx.Done():
	}
	slog.Info("stopping")
	server.GracefulStop()
	return err
}

// newController assembles the BuildKit controller: one OCI worker, the
// dockerfile.v0 and gateway.v0 frontends, registry/local/inline cache
// import and export.
func newController(ctx context.Context, cfg *config.Config, cacheDir string) (*control.Controller, *nydusWorker, error) {
	sm, err := session.NewManager()
	if err != nil {
		return nil, nil, err
	}
	w, err := newWorker(ctx, cfg, "", cacheDir)
	if err != nil {
		return nil, nil, err
	}
	wc := &worker.Controller{}
	if err := wc.Add(w); err != nil {
		return nil, nil, err
	}
	slog.Info("worker ready", "id", w.ID(), "snapshotter", cfg.Workers.OCI.Snapshotter, "labels", w.Labels())

	frontends := map[string]frontend.Frontend{
		"dockerfile.v0": forwarder.NewGatewayForwarder(wc.Infos(), dockerfile.Build),
	}
	gw, err := gateway.NewGatewayFrontend(wc.Infos(), cfg.Frontends.Gateway.AllowedRepositories)
	if err != nil {
		return nil, nil, err
	}
	frontends["gateway.v0"] = gw

	cacheStorage, err := bboltcachestorage.NewStore(filepath.Join(cfg.Root, "cache.db"))
	if err != nil {
		return nil, nil, err
	}
	historyDB, err := boltutil.SafeOpen(filepath.Join(cfg.Root, "history.db"), 0o600,
		&bolt.Options{FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, nil, err
	}
	hosts := resolver.NewRegistryConfig(cfg.Registries)
	ctrl, err := control.NewController(control.Opt{
		SessionManager:   sm,
		WorkerController: wc,
		Frontends:        frontends,
		ResolveCacheExporterFuncs: map[string]remotecache.ResolveCacheExporterFunc{
			"registry": registryremotecache.ResolveCacheExporterFunc(sm, hosts),
			"local":    localremotecache.ResolveCacheExporterFunc(sm),
			"inline":   inlineremotecache.ResolveCacheExporterFunc(),
		},
		ResolveCacheImporterFuncs: map[string]remotecache.ResolveCacheImporterFunc{
			"registry": registryremotecache.ResolveCacheImporterFunc(sm, w.ContentStore(), hosts),
			"local":    localremotecache.ResolveCacheImporterFunc(sm),
		},
		CacheManager:   solver.NewCacheManager(ctx, "local", cacheStorage, worker.NewCacheResultStorage(wc)),
		Entitlements:   cfg.Entitlements,
		HistoryDB:      historyDB,
		CacheStore:     cacheStorage,
		LeaseManager:   w.LeaseManager(),
		ContentStore:   w.ContentStore(),
		HistoryConfig:  cfg.History,
		GarbageCollect: w.GarbageCollect,
		GracefulStop:   ctx.Done(),
	})
	return ctrl, w, err
}

// pruneLoop prunes the nydus cache now and every hour until ctx ends.
func pruneLoop(ctx context.Context, c *nydusexporter.Cache, maxAge time.Duration) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if _, err := c.Prune(maxAge); err != nil {
			slog.Warn("nydus cache prune", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// listen opens the gRPC listeners: fd:// (the socket systemd passed),
// unix sockets (created 0660, root's
// group unless grpc.gid says otherwise) and TCP, over TLS when tlsConfig
// is set; plain TCP, which lets anyone who reaches the port run builds as
// root, only with insecureTCP.
func listen(cfg config.GRPCConfig, tlsConfig *tls.Config, insecureTCP bool) ([]net.Listener, error) {
	uid, gid := 0, 0
	if cfg.UID != nil {
		uid = *cfg.UID
	}
	if cfg.GID != nil {
		gid = *cfg.GID
	}
	var out []net.Listener
	for _, addr := range cfg.Address {
		proto, path, ok := strings.Cut(addr, "://")
		var l net.Listener
		var err error
		switch {
		case !ok:
			err = fmt.Errorf("address %q has no scheme (unix:// or tcp://)", addr)
		case proto == "unix":
			if err = os.MkdirAll(filepath.Dir(path), 0o711); err == nil {
				l, err = sys.GetLocalListener(path, uid, gid)
			}
		case addr == cli.SocketActivated:
			// systemd socket activation (a .socket unit owns the address).
			l, err = cli.ActivatedListener()
		case proto == "tcp" && tlsConfig == nil && !insecureTCP:
			err = errors.New("tcp:// without TLS lets anyone who reaches the port build as root: set [grpc.tls] cert and key (and ca), --tlscert/--tlskey/--tlscacert, or --allow-insecure-tcp")
		case proto == "tcp":
			l, err = net.Listen("tcp", path)
			if err == nil && tlsConfig != nil {
				l = tls.NewListener(l, tlsConfig)
			} else if err == nil {
				slog.Warn("serving plain TCP without TLS (--allow-insecure-tcp)", "addr", addr)
			}
		default:
			err = fmt.Errorf("address %q: scheme %q is not supported", addr, proto)
		}
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		out = append(out, l)
	}
	return out, nil
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}
