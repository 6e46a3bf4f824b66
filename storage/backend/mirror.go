package backend

import (
	"context"
	"net/http"
	"strings"
	"sync"
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
	cfg      MirrorConfig
	base     string // scheme://host
	interval time.Duration
	limit    int

	mu        sync.Mutex
	failures  int
	down      bool
	lastCheck time.Time
	checking  bool
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
		m := &mirror{cfg: c, base: base, interval: time.Duration(c.HealthCheckInterval) * time.Second, limit: c.FailureLimit}
		if m.interval <= 0 {
			m.interval = 5 * time.Second
		}
		if m.limit <= 0 {
			m.limit = 5
		}
		out = append(out, m)
	}
	return out
}

// usable reports whether the mirror may take a request, starting a health
// check of a down mirror when one is due.
func (m *mirror) usable(client *http.Client) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.down {
		return true
	}
	if !m.checking && time.Since(m.lastCheck) >= m.interval {
		m.checking = true
		m.lastCheck = time.Now()
		go m.check(client)
	}
	return false
}

func (m *mirror) check(client *http.Client) {
	ping := m.cfg.PingURL
	if ping == "" {
		ping = m.base + "/v2/"
	}
	ctx, cancel := context.WithTimeout(context.Background(), m.interval)
	defer cancel()
	ok := false
	if req, err := http.NewRequestWithContext(ctx, http.MethodGet, ping, nil); err == nil {
		if resp, err := client.Do(req); err == nil {
			drain(resp)
			ok = resp.StatusCode < 500
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checking = false
	if ok {
		m.down, m.failures = false, 0
	}
}

func (m *mirror) result(ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ok {
		m.failures = 0
		return
	}
	m.failures++
	if m.failures >= m.limit {
		m.down = true
		m.lastCheck = time.Now()
	}
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
		resp, err := b.sendHeaders(ctx, method, u, rng, m.cfg.Headers)
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
