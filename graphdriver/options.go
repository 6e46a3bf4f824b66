package graphdriver

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"
)

// Option configures a Driver (New).
type Option func(*options) error

// WithNydusd sets the nydusd binary that serves nydus layers.
func WithNydusd(path string) Option {
	return func(c *options) error {
		if path == "" {
			return errors.New("graphdriver: empty nydusd path")
		}
		c.nydusd = path
		return nil
	}
}

// WithNydusdConfig sets the nydusd configuration (v1 JSON) every nydus
// layer starts from: backend credentials, proxy, mirrors, cache and
// validation settings. A layer's image/backend.json names the registry
// and repository; the registry settings of this config (credentials,
// proxy, mirrors, scheme) apply only when its host is the image's, and
// otherwise only its timeouts and retry limit do.
func WithNydusdConfig(doc []byte) Option {
	return func(c *options) error {
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			return fmt.Errorf("graphdriver: nydusd config: %w", err)
		}
		c.baseConfig = m
		return nil
	}
}

// WithLogger sets the structured logger.
func WithLogger(l *slog.Logger) Option {
	return func(c *options) error {
		if l == nil {
			return errors.New("graphdriver: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithMountTimeout bounds how long a nydusd may take to mount.
func WithMountTimeout(t time.Duration) Option {
	return func(c *options) error {
		if t <= 0 {
			return fmt.Errorf("graphdriver: mount timeout %v must be positive", t)
		}
		c.mountTimeout = t
		return nil
	}
}

// WithRuntimeDir sets where nydusd API sockets live (default
// /run/docker-nydus-graphdriver).
func WithRuntimeDir(dir string) Option {
	return func(c *options) error {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("graphdriver: runtime dir %q is not absolute", dir)
		}
		c.runDir = dir
		return nil
	}
}

// WithInsecureRegistries names registries (host[:port], as in image
// references) that images may reach over plain HTTP or without TLS
// verification, as dockerd's --insecure-registry does. Loopback hosts
// are always allowed.
func WithInsecureRegistries(hosts ...string) Option {
	return func(c *options) error {
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, "/@ ") {
				return fmt.Errorf("graphdriver: insecure registry %q: want host[:port]", h)
			}
		}
		c.insecure = append(c.insecure, hosts...)
		return nil
	}
}

// WithContainerLayer sets how container layers are mounted (default
// ContainerLayerKernel); dockerd's storage option container-layer
// overrides it at Init. Mounts made in another mode before a restart
// stay as they are; the upper dirs are the same in every mode.
func WithContainerLayer(m ContainerLayer) Option {
	return func(c *options) error {
		m, err := ParseContainerLayer(string(m))
		if err != nil {
			return err
		}
		c.containerLayer = m
		return nil
	}
}

// WithOverlayServer sets the command that runs the userspace overlay
// process (ServeUserspace); the spec file's path is appended to it. The
// plugin passes its own executable and a subcommand.
func WithOverlayServer(cmd ...string) Option {
	return func(c *options) error {
		if len(cmd) == 0 || !filepath.IsAbs(cmd[0]) {
			return fmt.Errorf("graphdriver: overlay server command %q: want an absolute executable path", cmd)
		}
		c.serverCmd = append([]string(nil), cmd...)
		return nil
	}
}

// WithSupervisor sets the command that runs the keeper of each nydusd
// (spawn.KeeperMain; the plugin passes its own executable and a
// subcommand): nydusd then runs with --supervisor, a nydusd that dies is
// replaced by takeover without unmounting, and UpgradeNydusd can move
// every layer to another nydusd binary. Without it nydusd runs alone.
func WithSupervisor(cmd ...string) Option {
	return func(c *options) error {
		if len(cmd) == 0 || !filepath.IsAbs(cmd[0]) {
			return fmt.Errorf("graphdriver: supervisor command %q: want an absolute executable path", cmd)
		}
		c.keeperCmd = append([]string(nil), cmd...)
		return nil
	}
}
