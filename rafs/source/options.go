package source

import (
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

// Option configures a source.
type Option func(*config)

type config struct {
	whiteout   merge.WhiteoutSpec
	prefetch   []string
	log        *slog.Logger
	maxEntries int
}

func newConfig(opts []Option) *config {
	c := &config{whiteout: merge.WhiteoutOCI, log: slog.Default(), maxEntries: 10_000_000}
	for _, o := range opts {
		o(c)
	}
	return c
}

// WithWhiteoutSpec says how the input marks deletions: oci (default; kept
// as ordinary entries for merge to interpret), overlayfs (OCI markers in a
// tar become 0/0 character devices and trusted.overlay.opaque) or none.
func WithWhiteoutSpec(s merge.WhiteoutSpec) Option { return func(c *config) { c.whiteout = s } }

// WithPrefetch records prefetch paths in the tree.
func WithPrefetch(paths []string) Option { return func(c *config) { c.prefetch = paths } }

// WithLogger sets the logger for warnings (skipped xattrs and entries).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithMaxEntries bounds the number of entries (default 10 million).
func WithMaxEntries(n int) Option { return func(c *config) { c.maxEntries = n } }
