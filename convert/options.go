package convert

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/gonydus/nydus/rafs/layout"
)

// Layout selects the manifest shape Convert writes.
type Layout int

const (
	// LayoutNydus lists every data blob as a layer, then the bootstrap
	// layer: what upstream nydusify writes and nydus-snapshotter reads.
	LayoutNydus Layout = iota
	// LayoutDockerRunnable lists only the bootstrap layer; data blobs are
	// stored in the same repository and named by AnnotationBlobs.
	LayoutDockerRunnable
)

func (l Layout) String() string {
	if l == LayoutDockerRunnable {
		return "docker-runnable"
	}
	return "nydus"
}

// Option configures Convert.
type Option func(*config) error

type config struct {
	compressor  layout.Compressor
	chunkSize   uint32
	layout      Layout
	platform    *v1.Platform
	oci         bool
	source      Remote
	target      Remote
	workDir     string
	parallelism int
	workers     int
	prefetch    []string
	referrer    bool
	ociRef      bool
	log         *slog.Logger
	progress    Progress
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		compressor:  layout.CompressZstd,
		chunkSize:   layout.DefaultChunkSize,
		platform:    &v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		workDir:     os.TempDir(),
		parallelism: min(4, runtime.GOMAXPROCS(0)),
		prefetch:    []string{"/"},
		log:         slog.Default(),
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// WithCompressor selects the chunk compressor by upstream name: zstd
// (default), lz4_block or none.
func WithCompressor(name string) Option {
	return func(c *config) error {
		comp, err := layout.ParseCompressor(name)
		if err != nil {
			return fmt.Errorf("convert: compressor: %w", err)
		}
		switch comp {
		case layout.CompressNone, layout.CompressLZ4, layout.CompressZstd:
		default:
			return fmt.Errorf("convert: compressor %q is not supported for data blobs (none, lz4_block, zstd)", name)
		}
		c.compressor = comp
		return nil
	}
}

// WithChunkSize sets the chunk size: a power of two from 4 KiB to 16 MiB
// (default 1 MiB).
func WithChunkSize(n uint32) Option {
	return func(c *config) error {
		if n < 0x1000 || n > 0x1000000 || n&(n-1) != 0 {
			return fmt.Errorf("convert: chunk size %#x is not a power of two between 0x1000 and 0x1000000", n)
		}
		c.chunkSize = n
		return nil
	}
}

// WithFSVersion checks the requested RAFS version: only "6" is written.
func WithFSVersion(v string) Option {
	return func(c *config) error {
		switch v {
		case "", FSVersion:
			return nil
		case "5":
			return errors.New("convert: RAFS v5 output is not supported (use --fs-version 6)")
		}
		return fmt.Errorf("convert: unknown fs version %q (want 6)", v)
	}
}

// WithLayout selects the manifest layout (default LayoutNydus).
func WithLayout(l Layout) Option {
	return func(c *config) error {
		if l != LayoutNydus && l != LayoutDockerRunnable {
			return fmt.Errorf("convert: unknown layout %d", l)
		}
		c.layout = l
		return nil
	}
}

// WithPlatform selects the manifest of a multi-platform source, as
// "os/arch[/variant]" (default linux/GOARCH).
func WithPlatform(p string) Option {
	return func(c *config) error {
		pl, err := v1.ParsePlatform(p)
		if err != nil || pl.OS == "" || pl.Architecture == "" {
			return fmt.Errorf("convert: platform %q: want os/arch[/variant]", p)
		}
		c.platform = pl
		return nil
	}
}

// WithOCI writes OCI media types even for a Docker source (nydusify --oci).
// An OCI source always yields an OCI manifest.
func WithOCI(on bool) Option {
	return func(c *config) error { c.oci = on; return nil }
}

// WithSource and WithTarget say how to reach the source and target
// registries.
func WithSource(r Remote) Option { return func(c *config) error { c.source = r; return nil } }

// WithTarget says how to reach the target registry.
func WithTarget(r Remote) Option { return func(c *config) error { c.target = r; return nil } }

// WithWorkDir sets where data blobs wait between build and push (default
// the system temporary directory). Each blob is removed once pushed.
func WithWorkDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return errors.New("convert: empty work directory")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("convert: work directory: %w", err)
		}
		c.workDir = dir
		return nil
	}
}

// WithParallelism sets how many layers are converted at once (default
// min(4, GOMAXPROCS)).
func WithParallelism(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("convert: parallelism %d < 1", n)
		}
		c.parallelism = n
		return nil
	}
}

// WithWorkers sets the compression goroutines of each layer build
// (default: the builder's, GOMAXPROCS).
func WithWorkers(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("convert: workers %d < 0", n)
		}
		c.workers = n
		return nil
	}
}

// WithPrefetch sets the paths whose files nydusd prefetches when it mounts
// the image (the bootstrap's prefetch table; nydusify --prefetch-dir or
// --prefetch-patterns). The default, as upstream's converters write it, is
// "/": everything. Paths must be absolute; missing ones are skipped.
func WithPrefetch(paths []string) Option {
	return func(c *config) error {
		for _, p := range paths {
			if !strings.HasPrefix(p, "/") {
				return fmt.Errorf("convert: prefetch path %q is not absolute", p)
			}
		}
		c.prefetch = slices.Clone(paths)
		return nil
	}
}

// WithReferrer makes the target manifest refer to the source manifest
// (its subject), so the referrers API lists the Nydus image as an
// alternative of the source (nydusify --with-referrer).
func WithReferrer(on bool) Option {
	return func(c *config) error { c.referrer = on; return nil }
}

// WithLogger sets the logger for progress lines (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("convert: nil logger")
		}
		c.log = l
		return nil
	}
}

// WithOCIRef converts gzip layers to zran (targz-ref) RAFS blobs that
// reference the original layers instead of copying their data (upstream's
// --oci-ref): only the small RAFS blobs and the bootstrap are pushed, and
// the original layers must be in (or mountable into) the target
// repository.
func WithOCIRef(on bool) Option { return func(c *config) error { c.ociRef = on; return nil } }
