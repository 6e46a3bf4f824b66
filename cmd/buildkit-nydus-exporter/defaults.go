package main

import (
	"github.com/containerd/platforms"
	"github.com/moby/buildkit/cmd/buildkitd/config"
	"github.com/moby/buildkit/util/appdefaults"
	"github.com/moby/buildkit/util/archutil"
)

// Defaults of our daemon: its own root and socket, so it runs beside a
// stock buildkitd.
const (
	defaultRoot    = "/var/lib/buildkit-nydus"
	defaultAddress = "unix:///run/buildkit-nydus/buildkitd.sock"
)

// setDefaults fills what the configuration leaves empty, as buildkitd
// does for a rootful daemon.
func setDefaults(cfg *config.Config) {
	if cfg.Root == "" {
		cfg.Root = defaultRoot
	}
	if len(cfg.GRPC.Address) == 0 {
		cfg.GRPC.Address = []string{defaultAddress}
	}
	oci := &cfg.Workers.OCI
	if oci.Snapshotter == "" || oci.Snapshotter == "auto" {
		oci.Snapshotter = "overlayfs"
	}
	if oci.Platforms == nil {
		for _, p := range archutil.SupportedPlatforms(false) {
			oci.Platforms = append(oci.Platforms, platforms.Format(platforms.Normalize(p)))
		}
	}
	nc := &oci.NetworkConfig
	if nc.Mode == "" {
		nc.Mode = "host"
	}
	if nc.CNIConfigPath == "" {
		nc.CNIConfigPath = appdefaults.DefaultCNIConfigPath
	}
	if nc.CNIBinaryPath == "" {
		nc.CNIBinaryPath = appdefaults.DefaultCNIBinDir
	}
	if nc.BridgeName == "" {
		nc.BridgeName = appdefaults.BridgeName
	}
	if nc.BridgeSubnet == "" {
		nc.BridgeSubnet = appdefaults.BridgeSubnet
	}
	if cfg.OTEL.SocketPath == "" {
		cfg.OTEL.SocketPath = appdefaults.TraceSocketPath(false)
	}
}
