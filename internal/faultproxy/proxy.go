package faultproxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards requests to a target server, injecting faults.
type Proxy struct {
	// URL is the proxy's base URL (http://127.0.0.1:port).
	URL string

	target *url.URL
	srv    *httptest.Server
	client *http.Client
	done   chan struct{}
	bucket bucket

	mu        sync.Mutex
	rules     []*installed
	stats     map[string]*PathStats
	auth      map[string]*authSeen
	challenge string // the upstream's last WWW-Authenticate
}

// PathStats counts the requests for one URL path and the body bytes sent
// back for them.
type PathStats struct {
	Requests int64
	Bytes    int64
}

type authSeen struct {
	first time.Time
	uses  int
}

type installed struct {
	rule     Rule
	seen     int
	injected atomic.Int64
}

// Injected reports how often a rule was applied.
type Injected struct{ in *installed }

// Count returns the number of requests the rule's fault was injected into.
func (i Injected) Count() int64 { return i.in.injected.Load() }

// New starts a proxy in front of target (a base URL such as
// http://127.0.0.1:5000) on 127.0.0.1; it stops when the test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		t.Fatalf("faultproxy: bad target %q", target)
	}
	p := &Proxy{
		target: u,
		done:   make(chan struct{}),
		stats:  map[string]*PathStats{},
		auth:   map[string]*authSeen{},
		client: &http.Client{
			Transport:     &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 16},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: %v", err)
	}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serve))
	p.srv.Listener.Close()
	p.srv.Listener = l
	p.srv.Start()
	p.URL = p.srv.URL
	t.Cleanup(p.close)
	return p
}

func (p *Proxy) close() {
	close(p.done) // releases stalled bodies
	p.srv.CloseClientConnections()
	p.srv.Close()
	p.client.CloseIdleConnections()
}

// Host returns the proxy's host:port.
func (p *Proxy) Host() string { return strings.TrimPrefix(p.URL, "http://") }

// Add installs a rule after the existing ones.
func (p *Proxy) Add(r Rule) Injected {
	in := &installed{rule: r}
	p.mu.Lock()
	p.rules = append(p.rules, in)
	p.mu.Unlock()
	return Injected{in}
}

// Clear removes every rule.
func (p *Proxy) Clear() {
	p.mu.Lock()
	p.rules = nil
	p.mu.Unlock()
}

// SetBandwidth caps the body bytes per second sent to all clients
// together (0 = unlimited).
func (p *Proxy) SetBandwidth(bytesPerSecond int64) { p.bucket.setRate(bytesPerSecond) }

// Stats returns the counters of one URL path.
func (p *Proxy) Stats(path string) PathStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.stats[path]; s != nil {
		return *s
	}
	return PathStats{}
}

// BlobStats sums the counters of every path naming the blob (reads and
// size probes of sha256:id).
func (p *Proxy) BlobStats(id string) PathStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sum PathStats
	for path, s := range p.stats {
		if strings.HasSuffix(path, BlobPath+id) {
			sum.Requests += s.Requests
			sum.Bytes += s.Bytes
		}
	}
	return sum
}

// match counts the request and returns the fault to inject, if any.
func (p *Proxy) match(r *http.Request) *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats[r.URL.Path]
	if s == nil {
		s = &PathStats{}
		p.stats[r.URL.Path] = s
	}
	s.Requests++
	var seen *authSeen
	if a := r.Header.Get("Authorization"); a != "" {
		if seen = p.auth[a]; seen == nil {
			seen = &authSeen{first: time.Now()}
			p.auth[a] = seen
		}
		defer func() { seen.uses++ }()
	}
	for _, in := range p.rules {
		ru := &in.rule
		if !ru.selects(r) {
			continue
		}
		if ru.AuthAge > 0 || ru.AuthUses > 0 {
			if seen == nil || (ru.AuthAge > 0 && time.Since(seen.first) < ru.AuthAge) || (ru.AuthUses > 0 && seen.uses <= ru.AuthUses) {
				continue
			}
		}
		in.seen++
		if in.seen <= ru.Skip || (ru.Count > 0 && in.injected.Load() >= int64(ru.Count)) {
			continue
		}
		in.injected.Add(1)
		f := ru.Fault
		return &f
	}
	return nil
}

func (p *Proxy) addBytes(path string, n int) {
	p.mu.Lock()
	p.stats[path].Bytes += int64(n)
	p.mu.Unlock()
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	f := p.match(r)
	if f == nil {
		f = &Fault{}
	}
	if f.Delay > 0 && !p.sleep(r, f.Delay) {
		return
	}
	if f.Status != 0 {
		p.answer(w, f)
		return
	}
	if f.DropRange {
		r.Header.Del("Range")
	}
	resp, err := p.forward(r)
	if err != nil {
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		if c := resp.Header.Get("WWW-Authenticate"); c != "" {
			p.mu.Lock()
			p.challenge = c
			p.mu.Unlock()
		}
	}
	bodyStart := int64(0)
	if resp.StatusCode == http.StatusPartialContent {
		fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-", &bodyStart)
	}
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = vs
	}
	if f.ContentRange != "" {
		h.Set("Content-Range", f.ContentRange)
	}
	w.WriteHeader(resp.StatusCode)
	if f.Body == BodyFlipMiddle {
		mid := *f
		mid.Body, mid.At = BodyFlip, bodyStart+resp.ContentLength/2
		if resp.ContentLength <= 0 {
			mid.At = -1
		}
		f = &mid
	}
	p.copyBody(w, r, resp.Body, f, bodyStart)
}

// answer replies with the fault's status instead of forwarding.
func (p *Proxy) answer(w http.ResponseWriter, f *Fault) {
	for k, vs := range f.Header {
		w.Header()[k] = vs
	}
	if f.Status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		p.mu.Lock()
		c := p.challenge
		p.mu.Unlock()
		if c != "" {
			w.Header().Set("WWW-Authenticate", c)
		}
	}
	w.WriteHeader(f.Status)
}

func (p *Proxy) forward(r *http.Request) (*http.Response, error) {
	u := *p.target
	u.Path = r.URL.Path
	u.RawPath = r.URL.RawPath
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), r.Body)
	if err != nil {
		return nil, err
	}
	out.ContentLength = r.ContentLength
	for k, vs := range r.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
			continue
		}
		out.Header[k] = vs
	}
	out.Host = r.Host // absolute Locations the upstream builds point back at the proxy
	return p.client.Do(out)
}

// copyBody forwards body applying the fault's body action; off is the blob
// offset of the body's first byte.
func (p *Proxy) copyBody(w http.ResponseWriter, r *http.Request, body io.Reader, f *Fault, off int64) {
	rc := http.NewResponseController(w)
	limit := int64(-1)
	if f.Body == BodyReset || f.Body == BodyStall || f.Body == BodyTruncate {
		limit = f.At
	}
	buf := make([]byte, 16<<10)
	var sent int64
	for limit < 0 || sent < limit {
		want := len(buf)
		if limit >= 0 {
			want = int(min(int64(want), limit-sent))
		}
		n, err := body.Read(buf[:want])
		if n > 0 {
			if f.Body == BodyFlip && f.At >= off+sent && f.At < off+sent+int64(n) {
				buf[f.At-off-sent] ^= 0xff
			}
			if !p.bucket.wait(r, p.done, n) {
				return
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			sent += int64(n)
			p.addBytes(r.URL.Path, n)
		}
		if err != nil {
			return
		}
	}
	_ = rc.Flush()
	switch f.Body {
	case BodyStall:
		select {
		case <-r.Context().Done():
		case <-p.done:
		}
	case BodyReset, BodyTruncate:
		conn, _, err := rc.Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok && f.Body == BodyReset {
			_ = tc.SetLinger(0) // close with RST
		}
		conn.Close()
	}
}

// sleep waits d unless the client or the proxy goes away first.
func (p *Proxy) sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
	case <-p.done:
	}
	return false
}
