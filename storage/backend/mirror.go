package backend

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// MirrorConfig is one registry mirror: blob requests go to the first
// healthy mirror (same /v2 path, extra headers), falling back to the next
// and finally to the registry itself. A mirror that fails failure_limit
// times in a row is skipped until its health check (GET ping_url, default
// <host>/v2/) succeeds again.
type MirrorConfig struct {
	Host                string            `json:"host"`
	PingURL             string            `json:"ping_url"`
	Headers             map[string]string `json:"headers"`
	HealthCheckInterval int               `json:"health_check_interval"`
	FailureLimit        int               `json:"failure_limit"`
}

type mirror struct {
	health
	cfg     MirrorConfig
	base    string // scheme://host
	headers http.Header
}

func newMirrors(cfgs []MirrorConfig, scheme string) []*mirror {
	var out []*mirror
	for _, c := range cfgs {
		if c.Host == "" {
			continue
		}
		base := strings.TrimSuffix(c.Host, "/")
		if !strings.Contains(base, "://") {
			if scheme == "" {
				scheme = "https"
			}
			base = scheme + "://" + base
		}
		m := &mirror{cfg: c, base: base, headers: http.Header{}}
		for k, v := range c.Headers {
			m.headers.Set(k, v)
		}
		m.ping = c.PingURL
		if m.ping == "" {
			m.ping = base + "/v2/"
		}
		m.interval = time.Duration(c.HealthCheckInterval) * time.Second
		if m.interval <= 0 {
			m.interval = 5 * time.Second
		}
		m.limit = c.FailureLimit
		if m.limit <= 0 {
			m.limit = 5
		}
		out = append(out, m)
	}
	return out
}

// viaMirrors tries the healthy mirrors in order; ok is false when none
// answered usefully and the registry must be asked.
func (b *registryBlob) viaMirrors(ctx context.Context, method, rng, op string, handle func(*http.Response) error) bool {
	r := b.r
	for _, m := range r.mirrors {
		if !m.usable(r.client) {
			continue
		}
		u := m.base + "/v2/" + r.cfg.Repo + "/blobs/sha256:" + b.id
		resp, err := b.sendHeaders(ctx, method, u, rng, m.headers)
		if err != nil {
			m.result(false)
			r.log.Debug("registry mirror failed", "mirror", m.cfg.Host, "err", err)
			continue
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
			drain(resp)
			m.result(resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests)
			continue
		}
		err = b.finish(resp, nil, op, handle)
		m.result(err == nil)
		if err == nil {
			return true
		}
	}
	return false
}
