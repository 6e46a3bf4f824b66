package graphdriver

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"
)

// Option configures a Driver.
type Option func(*Driver) error

// WithNydusd sets the nydusd binary that serves nydus layers.
func WithNydusd(path string) Option {
	return func(d *Driver) error {
		if path == "" {
			return errors.New("graphdriver: empty nydusd path")
		}
		d.nydusd = path
		return nil
	}
}

// WithNydusdConfig sets the nydusd configuration (v1 JSON) every nydus
// layer starts from: backend credentials, proxy, mirrors, cache and
// validation settings. A layer's own image/backend.json replaces the
// backend type, host, repository and scheme; credentials stay.
func WithNydusdConfig(doc []byte) Option {
	return func(d *Driver) error {
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			return fmt.Errorf("graphdriver: nydusd config: %w", err)
		}
		d.baseConfig = m
		return nil
	}
}

// WithLogger sets the structured logger.
func WithLogger(l *slog.Logger) Option {
	return func(d *Driver) error {
		if l == nil {
			return errors.New("graphdriver: nil logger")
		}
		d.log = l
		return nil
	}
}

// WithMountTimeout bounds how long a nydusd may take to mount.
func WithMountTimeout(t time.Duration) Option {
	return func(d *Driver) error {
		if t <= 0 {
			return fmt.Errorf("graphdriver: mount timeout %v must be positive", t)
		}
		d.mountTimeout = t
		return nil
	}
}

// WithRuntimeDir sets where nydusd API sockets live (default
// /run/docker-nydus-graphdriver).
func WithRuntimeDir(dir string) Option {
	return func(d *Driver) error {
		if !filepath.IsAbs(dir) {
			return fmt.Errorf("graphdriver: runtime dir %q is not absolute", dir)
		}
		d.runDir = dir
		return nil
	}
}
