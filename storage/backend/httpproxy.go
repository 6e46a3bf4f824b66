package backend

import (
	"context"
	"errors"
	"fmt"
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
	reg.kind = "http-proxy"
	return &HTTPProxy{cfg: c, base: base, reg: reg}, nil
}

// Type implements Backend.
func (h *HTTPProxy) Type() string { return "http-proxy" }

// Metrics implements Backend.
func (h *HTTPProxy) Metrics() MetricsSnapshot { return h.reg.Metrics() }

// Close implements Backend.
func (h *HTTPProxy) Close() error { return h.reg.Close() }

// Open implements Backend.
func (h *HTTPProxy) Open(ctx context.Context, id string) (Blob, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	u := *h.base
	u.Path = path.Join("/", h.base.Path, h.cfg.Path, id)
	return &registryBlob{r: h.reg, id: id, fixed: u.String(), size: -1}, nil
}
