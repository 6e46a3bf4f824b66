package graphdriver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/continuity"
)

// initState is what Init received, kept on disk: dockerd calls Init once,
// so a restarted plugin must know its home without it.
type initState struct {
	Home    string
	UIDMaps []IDMap
	GIDMaps []IDMap
}

// WithStateFile keeps Init's arguments in path and restores them at New.
func WithStateFile(path string) Option {
	return func(c *options) error {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("graphdriver: state file %q is not absolute", path)
		}
		c.stateFile = path
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("graphdriver: %w", err)
		}
		var s initState
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("graphdriver: state file %s: %w", path, err)
		}
		if s.Home != "" {
			if _, err := os.Stat(s.Home); err != nil {
				return nil // a home that went away: wait for Init
			}
		}
		c.restored = s
		return nil
	}
}

// saveState writes Init's arguments atomically.
func (d *Driver) saveState(s initState) error {
	if d.stateFile == "" {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(d.stateFile), 0o700); err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	// Synced before the rename: after a crash the file is the old state or
	// the new one, never empty.
	if err := continuity.AtomicWriteFile(d.stateFile, b, 0o600); err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	return nil
}
