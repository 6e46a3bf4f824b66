package source

import (
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/merge"
)

// FileWriter receives file data; rafs/builder's BlobWriter implements it.
// The returned chunk pointers are complete once the writer has finished.
type FileWriter interface {
	WriteFile(r io.Reader, size int64) ([]*layout.ChunkInfo, error)
}

// Option configures a source; a bad value makes FromDir or FromTar fail.
type Option func(*config) error

type config struct {
	whiteout   merge.WhiteoutSpec
	prefetch   []string
	log        *slog.Logger
	maxEntries int
}

func newConfig(opts []Option) (*config, error) {
	c := &config{whiteout: merge.WhiteoutOCI, log: slog.Default(), maxEntries: 10_000_000}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// WithWhiteoutSpec says how the input marks deletions: oci (default; kept
// as ordinary entries for merge to interpret), overlayfs (OCI markers in a
// tar become 0/0 character devices and trusted.overlay.opaque) or none.
func WithWhiteoutSpec(s merge.WhiteoutSpec) Option {
	return func(c *config) error {
		switch s {
		case merge.WhiteoutOCI, merge.WhiteoutOverlayfs, merge.WhiteoutNone:
			c.whiteout = s
			return nil
		}
		return fmt.Errorf("source: unknown whiteout spec %d", s)
	}
}

// WithPrefetch records prefetch paths in the tree.
func WithPrefetch(paths []string) Option {
	return func(c *config) error { c.prefetch = paths; return nil }
}

// WithLogger sets the logger for warnings (skipped xattrs and entries).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("source: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithMaxEntries bounds the number of entries (default 10 million).
func WithMaxEntries(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("source: max entries %d: must be at least 1", n)
		}
		c.maxEntries = n
		return nil
	}
}
