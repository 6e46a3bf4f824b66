package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"

	"github.com/moby/buildkit/cache"
	cacheconfig "github.com/moby/buildkit/cache/config"
	bkexporter "github.com/moby/buildkit/exporter"
	"github.com/moby/buildkit/exporter/containerimage/exptypes"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/util/compression"
	"github.com/moby/buildkit/util/progress"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gonydus/nydus/convert"
)

// Option configures New.
type Option func(*config) error

type config struct {
	sessions *session.Manager
	log      *slog.Logger
}

// WithSessionManager gives access to the client's registry credentials
// (nil, the default: none).
func WithSessionManager(m *session.Manager) Option {
	return func(c *config) error { c.sessions = m; return nil }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("nydus exporter: nil logger")
		}
		c.log = l
		return nil
	}
}

// New returns BuildKit's exporter for type=nydus, converting layers
// through cache (share one across exports).
func New(cache *Cache, opts ...Option) (bkexporter.Exporter, error) {
	if cache == nil {
		return nil, errors.New("nydus exporter: no cache")
	}
	c := config{log: slog.Default()}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	return &nydusExporter{cache: cache, cfg: c}, nil
}

type nydusExporter struct {
	cache *Cache
	cfg   config
}

// Resolve parses the attributes of one --output type=nydus.
func (e *nydusExporter) Resolve(_ context.Context, id int, attrs map[string]string) (bkexporter.ExporterInstance, error) {
	o, err := ParseAttrs(attrs)
	if err != nil {
		return nil, err
	}
	return &instance{e: e, id: id, attrs: attrs, opts: o}, nil
}

type instance struct {
	e     *nydusExporter
	id    int
	attrs map[string]string
	opts  *Options
}

func (i *instance) ID() int                    { return i.id }
func (i *instance) Name() string               { return "exporting to nydus image" }
func (i *instance) Type() string               { return Type }
func (i *instance) Attrs() map[string]string   { return i.attrs }
func (i *instance) Config() *bkexporter.Config { return bkexporter.NewConfig() }

// Export converts the result's layers (their uncompressed diffs from
// BuildKit's content store) and pushes the image.
func (i *instance) Export(ctx context.Context, src *bkexporter.Source, info bkexporter.ExportBuildInfo) (map[string]string, bkexporter.FinalizeFunc, bkexporter.DescriptorReference, error) {
	ref, cfg, err := pick(src)
	if err != nil {
		return nil, nil, nil, err
	}
	g := session.NewGroup(info.SessionID)
	var layers []Layer
	if ref != nil {
		done := progress.OneOff(ctx, "computing layer diffs")
		remotes, err := ref.GetRemotes(ctx, true, cacheconfig.RefConfig{
			Compression: compression.Config{Type: compression.Uncompressed, Force: true}}, false, g)
		if err := done(err); err != nil {
			return nil, nil, nil, fmt.Errorf("nydus exporter: layer diffs: %w", err)
		}
		if len(remotes) == 0 {
			return nil, nil, nil, errors.New("nydus exporter: no layer diffs")
		}
		r := remotes[0]
		for _, d := range r.Descriptors {
			layers = append(layers, Layer{DiffID: d.Digest, Size: d.Size, Open: func(ctx context.Context) (io.ReadCloser, error) {
				ra, err := r.Provider.ReaderAt(ctx, d)
				if err != nil {
					return nil, err
				}
				return readCloser{io.NewSectionReader(ra, 0, ra.Size()), ra}, nil
			}})
		}
	}
	if len(layers) == 0 {
		return nil, nil, nil, errors.New("nydus exporter: the result has no layers")
	}
	if n := len(src.Attestations); n > 0 {
		i.e.cfg.log.Info("attestations are not pushed with nydus images", "platforms", n)
	}
	kc := sessionKeychain{creds: authCredentials(ctx, i.e.cfg.sessions, g)}
	res, err := Export(ctx, i.e.cache, &Request{
		Layers:   layers,
		Config:   cfg,
		Options:  i.opts,
		Remote:   convert.Remote{Keychain: kc},
		Progress: bkProgress{ctx: ctx},
		Log:      i.e.cfg.log.With("session", info.SessionID),
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return res.Response(), nil, nil, nil
}

// pick returns the result's single-platform ref and its image config.
func pick(src *bkexporter.Source) (cache.ImmutableRef, []byte, error) {
	if len(src.Refs) == 0 {
		cfg := src.Metadata[exptypes.ExporterImageConfigKey]
		return src.Ref, defaultConfig(cfg), nil
	}
	if len(src.Refs) > 1 {
		return nil, nil, fmt.Errorf("nydus exporter: %d platforms: multi-platform results are not supported yet", len(src.Refs))
	}
	keys := make([]string, 0, 1)
	for k := range src.Refs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	cfg := src.Metadata[exptypes.ExporterImageConfigKey+"/"+keys[0]]
	if cfg == nil {
		cfg = src.Metadata[exptypes.ExporterImageConfigKey]
	}
	return src.Refs[keys[0]], defaultConfig(cfg), nil
}

// defaultConfig returns cfg, or a minimal config for results that carry
// none (LLB without a frontend's image config).
func defaultConfig(cfg []byte) []byte {
	if len(cfg) > 0 {
		return cfg
	}
	b, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		RootFS: ocispec.RootFS{Type: "layers"}})
	return b
}

type readCloser struct {
	io.Reader
	io.Closer
}
