package main

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"

	ctdsnapshot "github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/plugins/snapshots/native"
	"github.com/containerd/containerd/v2/plugins/snapshots/overlay"
	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/executor/oci"
	bkexporter "github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/util/disk"
	"github.com/moby/buildkit/util/network/cniprovider"
	"github.com/moby/buildkit/util/network/netproviders"
	"github.com/moby/buildkit/util/resolver"
	bkversion "github.com/moby/buildkit/version"
	"github.com/moby/buildkit/worker/base"
	"github.com/moby/buildkit/worker/runc"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	nydusexporter "github.com/gonydus/nydus/exporter"
)

// nydusWorker is the runc worker with one more exporter type, "nydus";
// every other type is the base worker's.
type nydusWorker struct {
	*base.Worker
	cache *nydusexporter.Cache
	log   *slog.Logger
}

// Exporter returns the nydus exporter for exporter.Type, the image
// exporter that hands compression=nydus to it for "image", and the base
// worker's exporters otherwise.
func (w *nydusWorker) Exporter(name string, sm *session.Manager) (bkexporter.Exporter, error) {
	switch name {
	case nydusexporter.Type:
		return nydusexporter.New(w.cache, nydusexporter.WithSessionManager(sm), nydusexporter.WithLogger(w.log))
	case client.ExporterImage:
		image, err := w.Worker.Exporter(name, sm)
		if err != nil {
			return nil, err
		}
		nydus, err := nydusexporter.New(w.cache, nydusexporter.WithSessionManager(sm), nydusexporter.WithLogger(w.log))
		if err != nil {
			return nil, err
		}
		return imageOrNydus{image: image, nydus: nydus}, nil
	}
	return w.Worker.Exporter(name, sm)
}

// imageOrNydus is BuildKit's image exporter, except that an export with
// compression=nydus (upstream BuildKit's spelling of a nydus image) is
// made by the nydus exporter, so both spellings push the same image.
type imageOrNydus struct {
	image, nydus bkexporter.Exporter
}

func (e imageOrNydus) Resolve(ctx context.Context, id int, attrs map[string]string) (bkexporter.ExporterInstance, error) {
	nattrs, isNydus, err := nydusexporter.ImageAttrs(attrs)
	if err != nil {
		return nil, err
	}
	if isNydus {
		return e.nydus.Resolve(ctx, id, nattrs)
	}
	return e.image.Resolve(ctx, id, attrs)
}

// newWorker sets up the OCI (runc) worker as buildkitd does, with the
// overlayfs or native snapshotter.
func newWorker(ctx context.Context, cfg *config.Config, traceSocket, cacheDir string) (*nydusWorker, error) {
	oc := cfg.Workers.OCI
	if oc.Binary == "" {
		if _, err := exec.LookPath("runc"); err != nil {
			if _, err2 := exec.LookPath("buildkit-runc"); err2 != nil {
				return nil, fmt.Errorf("oci worker: runc not found in PATH: %w", err)
			}
		}
	}
	sn := runc.SnapshotterFactory{Name: oc.Snapshotter}
	switch oc.Snapshotter {
	case "overlayfs":
		sn.New = func(root string) (ctdsnapshot.Snapshotter, error) {
			return overlay.NewSnapshotter(root, overlay.AsynchronousRemove)
		}
	case "native":
		sn.New = native.NewSnapshotter
	default:
		return nil, fmt.Errorf("oci worker: snapshotter %q is not supported (overlayfs, native)", oc.Snapshotter)
	}
	var dns *oci.DNSConfig
	if d := cfg.DNS; d != nil {
		dns = &oci.DNSConfig{Nameservers: d.Nameservers, Options: d.Options, SearchDomains: d.SearchDomains}
	}
	nc := netproviders.Opt{Mode: oc.Mode, CNI: cniprovider.Opt{Root: cfg.Root, ConfigPath: oc.CNIConfigPath,
		BinaryDir: oc.CNIBinaryPath, PoolSize: oc.CNIPoolSize, BridgeName: oc.BridgeName, BridgeSubnet: oc.BridgeSubnet}}
	opt, err := runc.NewWorkerOpt(cfg.Root, sn, false, oci.ProcessSandbox, oc.Labels, nil, nc, dns, oc.Binary,
		oc.ApparmorProfile, oc.SELinux, nil, traceSocket, oc.DefaultCgroupParent, nil)
	if err != nil {
		return nil, fmt.Errorf("oci worker: %w", err)
	}
	opt.GCPolicy = gcPolicy(oc.GCConfig, cfg.Root)
	opt.BuildkitVersion = client.BuildkitVersion{Package: bkversion.Package, Version: bkversion.Version, Revision: bkversion.Revision}
	opt.RegistryHosts = resolver.NewRegistryConfig(cfg.Registries)
	if len(oc.Platforms) > 0 {
		var ps []ocispecs.Platform
		for _, s := range oc.Platforms {
			p, err := platforms.Parse(s)
			if err != nil {
				return nil, fmt.Errorf("oci worker: platform %q: %w", s, err)
			}
			ps = append(ps, platforms.Normalize(p))
		}
		opt.Platforms = ps
	}
	w, err := base.NewWorker(ctx, opt)
	if err != nil {
		return nil, fmt.Errorf("oci worker: %w", err)
	}
	log := slog.Default().With("exporter", nydusexporter.Type)
	cache, err := nydusexporter.NewCache(cacheDir, log)
	if err != nil {
		return nil, err
	}
	return &nydusWorker{Worker: w, cache: cache, log: log}, nil
}

// gcPolicy turns the configuration's GC settings into prune rules, as
// buildkitd does.
func gcPolicy(cfg config.GCConfig, root string) []client.PruneInfo {
	if cfg.GC != nil && !*cfg.GC {
		return nil
	}
	dstat, _ := disk.GetDiskStat(root)
	if len(cfg.GCPolicy) == 0 {
		cfg.GCPolicy = config.DefaultGCPolicy(cfg, dstat)
	}
	out := make([]client.PruneInfo, 0, len(cfg.GCPolicy))
	for _, r := range cfg.GCPolicy {
		out = append(out, client.PruneInfo{Filter: r.Filters, All: r.All, KeepDuration: r.KeepDuration.Duration,
			ReservedSpace: r.ReservedSpace.AsBytes(dstat), MaxUsedSpace: r.MaxUsedSpace.AsBytes(dstat),
			MinFreeSpace: r.MinFreeSpace.AsBytes(dstat)})
	}
	return out
}
