package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Blob is one blob of a backend.
type Blob interface {
	// ReadAt reads len(p) bytes at off; fewer bytes only at the end of
	// the blob, with io.EOF.
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	// Size returns the blob's size in bytes.
	Size(ctx context.Context) (int64, error)
}

// Backend opens blobs by id.
type Backend interface {
	Type() string
	Open(ctx context.Context, id string) (Blob, error)
	Metrics() MetricsSnapshot
	Close() error
}

// ErrNotFound reports a blob the backend does not have.
var ErrNotFound = errors.New("backend: blob not found")

// Option configures New.
type Option func(*options) error

type options struct {
	log  *slog.Logger
	env  func(string) string
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// keychain replaces the docker config as the last credential source.
	keychain authn.Keychain
	// credentialTimeout bounds a keychain's answer (0: the default).
	credentialTimeout time.Duration
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("backend: nil logger")
		}
		o.log = l
		return nil
	}
}

// WithDialContext replaces the network dialer of HTTP backends (tests:
// a registry that looks remote, served on loopback).
func WithDialContext(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(o *options) error {
		if dial == nil {
			return errors.New("backend: nil dialer")
		}
		o.dial = dial
		return nil
	}
}

// WithEnv replaces os.Getenv (tests; IMAGE_PULL_AUTH, DOCKER_CONFIG, HOME).
func WithEnv(f func(string) string) Option {
	return func(o *options) error { o.env = f; return nil }
}

func newOptions(opts []Option) (*options, error) {
	o := &options{log: slog.Default(), env: os.Getenv, credentialTimeout: defaultCredentialTimeout}
	for _, f := range opts {
		if err := f(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// New returns the backend of type typ configured by settings (the JSON of
// the type's section).
func New(typ string, settings json.RawMessage, opts ...Option) (Backend, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "localfs":
		var c LocalfsConfig
		if err := decode(settings, &c); err != nil {
			return nil, fmt.Errorf("backend: localfs: %w", err)
		}
		return NewLocalfs(c)
	case "registry":
		c := DefaultRegistryConfig()
		if err := decode(settings, &c); err != nil {
			return nil, fmt.Errorf("backend: registry: %w", err)
		}
		return NewRegistry(c, o)
	case "http-proxy":
		c := DefaultHTTPProxyConfig()
		if err := decode(settings, &c); err != nil {
			return nil, fmt.Errorf("backend: http-proxy: %w", err)
		}
		return NewHTTPProxy(c, o)
	}
	return nil, fmt.Errorf("backend: unsupported backend type %q (localfs, registry, http-proxy)", typ)
}

func decode(settings json.RawMessage, v any) error {
	if len(settings) == 0 {
		return errors.New("missing settings")
	}
	return json.Unmarshal(settings, v)
}
