package targzref

import (
	"fmt"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/zran"
)

// Option configures Build.
type Option func(*config) error

type config struct {
	chunkSize       uint32
	toc             bool
	inlineBootstrap bool
	explicitUIDGID  bool
	contexts        zran.Limits
	source          []source.Option
}

// defaultConfig is upstream nydus-image's defaults for targz-ref.
func defaultConfig() config {
	return config{chunkSize: layout.DefaultChunkSize, explicitUIDGID: true, contexts: zran.DefaultLimits()}
}

// WithChunkSize sets the image chunk size (power of two, 4 KiB..16 MiB;
// default 1 MiB).
func WithChunkSize(n uint32) Option {
	return func(c *config) error {
		if !layout.ValidChunkSize(uint64(n)) {
			return fmt.Errorf("targzref: invalid chunk size %#x", n)
		}
		c.chunkSize = n
		return nil
	}
}

// WithTOC writes the chunk digests, tar headers and ToC into the RAFS
// blob (nydus-image --features blob-toc; off by default).
func WithTOC(on bool) Option {
	return func(c *config) error { c.toc = on; return nil }
}

// WithInlineBootstrap embeds the bootstrap in the RAFS blob
// (--blob-inline-meta); blob_meta_digest then stays zero.
func WithInlineBootstrap(on bool) Option {
	return func(c *config) error { c.inlineBootstrap = on; return nil }
}

// WithExplicitUIDGID records owners (on by default; --repeatable turns it
// off).
func WithExplicitUIDGID(on bool) Option {
	return func(c *config) error { c.explicitUIDGID = on; return nil }
}

// WithContexts spaces the zran inflate contexts (default
// zran.DefaultLimits, about half upstream's index size;
// zran.UpstreamLimits reproduces upstream's spacing). Upstream nydusd
// reads either.
func WithContexts(l zran.Limits) Option {
	return func(c *config) error {
		if err := l.Validate(); err != nil {
			return fmt.Errorf("targzref: %w", err)
		}
		c.contexts = l
		return nil
	}
}

// WithSourceOptions configures the tar source (whiteouts, prefetch,
// logging).
func WithSourceOptions(opts ...source.Option) Option {
	return func(c *config) error { c.source = append(c.source, opts...); return nil }
}
