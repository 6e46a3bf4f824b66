package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// HTTPProxyConfig is the http-proxy backend section: blobs are served at
// <addr>/<path>/<blob id>, addr being http(s)://host:port or the absolute
// path of a unix socket.
type HTTPProxyConfig struct {
	Addr           string `json:"addr"`
	Path           string `json:"path"`
	SkipVerify     bool   `json:"skip_verify"`
	Timeout        int    `json:"timeout"`
	ConnectTimeout int    `json:"connect_timeout"`
	RetryLimit     int    `json:"retry_limit"`
}

// DefaultHTTPProxyConfig returns upstream's defaults.
func DefaultHTTPProxyConfig() HTTPProxyConfig { return HTTPProxyConfig{Timeout: 5, ConnectTimeout: 5} }

// HTTPProxy reads blobs from an HTTP server or a unix-socket proxy.
type HTTPProxy struct {
	cfg  HTTPProxyConfig
	base *url.URL
	reg  *Registry // reuses the registry client's retry, range and timeout logic
}

// NewHTTPProxy returns an http-proxy backend.
func NewHTTPProxy(c HTTPProxyConfig, o *options) (*HTTPProxy, error) {
	if c.Addr == "" {
		return nil, errors.New("backend: http-proxy needs addr")
	}
	rc := RegistryConfig{Host: "proxy", Repo: "proxy", Timeout: c.Timeout, ConnectTimeout: c.ConnectTimeout,
		RetryLimit: c.RetryLimit, SkipVerify: c.SkipVerify, Scheme: "http"}
	reg, err := NewRegistry(rc, &options{log: o.log, env: func(string) string { return "" }})
	if err != nil {
		return nil, err
	}
	var base *url.URL
	if strings.HasPrefix(c.Addr, "/") {
		sock := c.Addr
		tr := reg.client.Transport.(*http.Transport)
		dialer := &net.Dialer{Timeout: time.Duration(reg.cfg.ConnectTimeout) * time.Second}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", sock)
		}
		base = &url.URL{Scheme: "http", Host: "unix"}
	} else {
		if base, err = url.Parse(c.Addr); err != nil || base.Host == "" || (base.Scheme != "http" && base.Scheme != "https") {
			return nil, fmt.Errorf("backend: http-proxy addr %q is neither http(s)://host:port nor an absolute socket path", c.Addr)
		}
	}
	reg.cfg.Host = base.Host
	reg.scheme = base.Scheme
	return &HTTPProxy{cfg: c, base: base, reg: reg}, nil
}

// Type implements Backend.
func (h *HTTPProxy) Type() string { return "http-proxy" }

// Metrics implements Backend.
func (h *HTTPProxy) Metrics() MetricsSnapshot { return h.reg.m.snapshot("http-proxy") }

// Close implements Backend.
func (h *HTTPProxy) Close() error { return h.reg.Close() }

// Open implements Backend.
func (h *HTTPProxy) Open(ctx context.Context, id string) (Blob, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	u := *h.base
	u.Path = path.Join("/", h.base.Path, h.cfg.Path, id)
	return &proxyBlob{registryBlob{r: h.reg, id: id, size: -1}, u.String()}, nil
}

// proxyBlob is a registry blob at a fixed URL, without registry auth.
type proxyBlob struct {
	registryBlob
	url string
}

func (p *proxyBlob) get(ctx context.Context, method, rng string, handle func(*http.Response) error) error {
	r := p.r
	var last error
	for attempt := 0; attempt <= r.cfg.RetryLimit; attempt++ {
		if attempt > 0 {
			r.m.retry()
			t := time.NewTimer(backoff(attempt))
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(ctx.Err(), last)
			case <-t.C:
			}
		}
		resp, err := p.sendDirect(ctx, method, p.url, rng, "")
		err = p.finish(resp, err, method, handle)
		if err == nil {
			return nil
		}
		last = err
		var re *errRetry
		if !errors.As(err, &re) {
			return err
		}
	}
	return last
}

func (p *proxyBlob) ReadAt(ctx context.Context, buf []byte, off int64) (int, error) {
	return readRange(ctx, &p.registryBlob, p.Size, buf, off, func(rng string, h func(*http.Response) error) error {
		return p.get(ctx, http.MethodGet, rng, h)
	})
}

func (p *proxyBlob) Size(ctx context.Context) (int64, error) {
	p.mu.Lock()
	s := p.size
	p.mu.Unlock()
	if s >= 0 {
		return s, nil
	}
	err := p.get(ctx, http.MethodHead, "", func(resp *http.Response) error {
		if resp.ContentLength < 0 {
			return errors.New("backend: http-proxy HEAD without Content-Length")
		}
		p.setSize(resp.ContentLength)
		return nil
	})
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size, nil
}

var _ io.Closer = (*HTTPProxy)(nil)
