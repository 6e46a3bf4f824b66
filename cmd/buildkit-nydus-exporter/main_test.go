package main

import (
	"path/filepath"
	"testing"
)

func TestExampleConfig(t *testing.T) {
	cfg, err := loadConfig(filepath.Join("..", "..", "examples", "buildkit", "buildkitd.toml"))
	if err != nil {
		t.Fatal(err)
	}
	setDefaults(&cfg)
	if cfg.Root != "/var/lib/buildkit-nydus" || len(cfg.GRPC.Address) != 1 ||
		cfg.GRPC.Address[0] != "unix:///run/buildkit-nydus/buildkitd.sock" {
		t.Fatalf("root %q, addresses %q", cfg.Root, cfg.GRPC.Address)
	}
	oc := cfg.Workers.OCI
	if oc.Snapshotter != "overlayfs" || oc.GC == nil || !*oc.GC || oc.GCReservedSpace.Bytes != 10<<30 {
		t.Fatalf("worker %+v", oc)
	}
	if len(gcPolicy(oc.GCConfig, t.TempDir())) == 0 {
		t.Fatal("no GC policy")
	}
}

func TestDefaultsWithoutConfig(t *testing.T) {
	cfg, err := loadConfig(filepath.Join(t.TempDir(), "missing.toml"))
	if err != nil {
		t.Fatal(err)
	}
	setDefaults(&cfg)
	if cfg.Root != defaultRoot || cfg.GRPC.Address[0] != defaultAddress || cfg.Workers.OCI.Snapshotter != "overlayfs" ||
		cfg.Workers.OCI.NetworkConfig.Mode != "host" || len(cfg.Workers.OCI.Platforms) == 0 {
		t.Fatalf("defaults %+v", cfg)
	}
}
