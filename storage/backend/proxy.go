package backend

import (
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// ProxyConfig is the registry proxy section (e.g. a Dragonfly dfdaemon):
// requests go to url with the same path. With fallback, a proxy that fails
// is bypassed for the registry itself until its health check (GET
// ping_url every check_interval seconds) passes again.
type ProxyConfig struct {
	URL           string `json:"url"`
	PingURL       string `json:"ping_url"`
	Fallback      bool   `json:"fallback"`
	CheckInterval int    `json:"check_interval"`
	UseHTTP       bool   `json:"use_http"`
}

// proxyRoute is a configured proxy and its health.
type proxyRoute struct {
	health
	base     *url.URL
	useHTTP  bool
	fallback bool
}

func newProxyRoute(c ProxyConfig) (*proxyRoute, error) {
	if c.URL == "" {
		return nil, nil
	}
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("backend: registry proxy url %q is not http(s)://host[:port]", c.URL)
	}
	interval := time.Duration(c.CheckInterval) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return &proxyRoute{health: health{ping: c.PingURL, interval: interval, limit: 1}, base: u, useHTTP: c.UseHTTP, fallback: c.Fallback}, nil
}

// route returns the proxied form of the registry URL u, or "" when the
// request should go straight to the registry.
func (p *proxyRoute) route(u string, registryHost string, client *http.Client) string {
	if p == nil {
		return ""
	}
	t, err := url.Parse(u)
	if err != nil || t.Host != registryHost {
		return "" // redirected blob storage is fetched directly
	}
	if p.fallback && !p.usable(client) {
		return ""
	}
	t.Scheme, t.Host = p.base.Scheme, p.base.Host
	if p.useHTTP {
		t.Scheme = "http"
	}
	return t.String()
}
