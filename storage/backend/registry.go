package backend

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProxyConfig is the registry proxy section (e.g. a Dragonfly dfdaemon):
// requests go to url with the same path; on failure, with fallback, to the
// registry itself.
type ProxyConfig struct {
	URL           string `json:"url"`
	PingURL       string `json:"ping_url"`
	Fallback      bool   `json:"fallback"`
	CheckInterval int    `json:"check_interval"`
	UseHTTP       bool   `json:"use_http"`
}

// RegistryConfig is the registry backend section.
type RegistryConfig struct {
	Scheme             string         `json:"scheme"`
	Host               string         `json:"host"`
	Repo               string         `json:"repo"`
	Auth               string         `json:"auth"`
	RegistryToken      string         `json:"registry_token"`
	BlobURLScheme      string         `json:"blob_url_scheme"`
	BlobRedirectedHost string         `json:"blob_redirected_host"`
	SkipVerify         bool           `json:"skip_verify"`
	Timeout            int            `json:"timeout"`
	ConnectTimeout     int            `json:"connect_timeout"`
	RetryLimit         int            `json:"retry_limit"`
	Proxy              ProxyConfig    `json:"proxy"`
	Mirrors            []MirrorConfig `json:"mirrors"`
}

// DefaultRegistryConfig returns upstream's defaults.
func DefaultRegistryConfig() RegistryConfig {
	return RegistryConfig{Timeout: 5, ConnectTimeout: 5, Proxy: ProxyConfig{Fallback: true, CheckInterval: 5}}
}

// Registry reads blobs from an OCI distribution registry.
type Registry struct {
	cfg     RegistryConfig
	log     *slog.Logger
	client  *http.Client
	timeout time.Duration
	tokens  *tokenSource
	creds   *credentials
	m       metrics

	mu        sync.Mutex
	mirrors   []*mirror
	scheme    string            // resolved scheme when cfg.Scheme is ""
	redirects map[string]string // blob id -> redirected blob URL
	challenge *challenge
}

// NewRegistry returns a registry backend.
func NewRegistry(c RegistryConfig, o *options) (*Registry, error) {
	if c.Host == "" || c.Repo == "" {
		return nil, errors.New("backend: registry needs host and repo")
	}
	switch c.Scheme {
	case "", "http", "https":
	default:
		return nil, fmt.Errorf("backend: registry scheme %q (want http, https or empty for auto)", c.Scheme)
	}
	if c.Timeout <= 0 {
		c.Timeout = 5
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 5
	}
	if c.RetryLimit < 0 {
		c.RetryLimit = 0
	}
	auth := c.Auth
	if env := o.env("IMAGE_PULL_AUTH"); env != "" {
		auth = env
	}
	creds, err := decodeAuth(auth)
	if err != nil {
		return nil, fmt.Errorf("backend: registry %s: %w", c.Host, err)
	}
	if creds == nil {
		if creds, err = dockerConfigAuth(o.env, c.Host); err != nil {
			return nil, fmt.Errorf("backend: registry %s: %w", c.Host, err)
		}
	}
	timeout := time.Duration(c.Timeout) * time.Second
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: time.Duration(c.ConnectTimeout) * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   time.Duration(c.ConnectTimeout) * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSClientConfig:       &tls.Config{InsecureSkipVerify: c.SkipVerify}, //nolint:gosec // user's choice: skip_verify
	}
	r := &Registry{cfg: c, log: o.log, timeout: timeout, creds: creds, redirects: map[string]string{}}
	r.client = &http.Client{Transport: transport, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("too many redirects")
		}
		// Never send registry credentials to the blob storage host, and
		// reach it by the configured scheme and host.
		if req.URL.Host != via[0].URL.Host {
			req.Header.Del("Authorization")
			rewritten, err := url.Parse(r.rewriteRedirect(req.URL))
			if err != nil {
				return err
			}
			req.URL = rewritten
		}
		return nil
	}}
	r.tokens = &tokenSource{client: &http.Client{Transport: transport, Timeout: 2 * timeout}, creds: creds}
	if c.RegistryToken != "" {
		r.tokens.token, r.tokens.static = c.RegistryToken, true
	}
	if c.Scheme != "" {
		r.scheme = c.Scheme
	}
	r.mirrors = newMirrors(c.Mirrors, c.Scheme)
	return r, nil
}

// Type implements Backend.
func (r *Registry) Type() string { return "registry" }

// Metrics implements Backend.
func (r *Registry) Metrics() MetricsSnapshot { return r.m.snapshot("registry") }

// Close implements Backend.
func (r *Registry) Close() error {
	r.client.CloseIdleConnections()
	return nil
}

// Open implements Backend. The blob is not contacted until it is read.
func (r *Registry) Open(ctx context.Context, id string) (Blob, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	id = strings.TrimPrefix(id, "sha256:")
	return &registryBlob{r: r, id: id, size: -1}, nil
}

func (r *Registry) blobURL(scheme, id string) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/sha256:%s", scheme, r.cfg.Host, r.cfg.Repo, id)
}

// schemes returns the schemes to try, the resolved one first.
func (r *Registry) schemes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.scheme != "" {
		return []string{r.scheme}
	}
	return []string{"https", "http"}
}

type registryBlob struct {
	r  *Registry
	id string

	mu   sync.Mutex
	size int64
}

// errRetry marks a failure worth another attempt.
type errRetry struct {
	err   error
	after time.Duration // Retry-After, if the server gave one
}

func (e *errRetry) Error() string { return e.err.Error() }
func (e *errRetry) Unwrap() error { return e.err }

// HTTPError is a final non-success status.
type HTTPError struct {
	Status int
	Op     string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("backend: registry %s: HTTP %d %s", e.Op, e.Status, http.StatusText(e.Status))
}

// do runs one logical request with retries, auth, scheme fallback and
// redirect caching. build prepares the request for a URL; handle consumes
// a successful response.
func (b *registryBlob) do(ctx context.Context, op string, method string, rng string, handle func(*http.Response) error) error {
	r := b.r
	var last error
	for attempt := 0; attempt <= r.cfg.RetryLimit; attempt++ {
		if attempt > 0 {
			r.m.retry()
			wait := backoff(attempt)
			var re *errRetry
			if errors.As(last, &re) && re.after > 0 {
				wait = min(re.after, 30*time.Second)
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return errors.Join(ctx.Err(), last)
			case <-t.C:
			}
		}
		err := b.attempt(ctx, op, method, rng, handle)
		if err == nil {
			return nil
		}
		last = err
		var re *errRetry
		if !errors.As(err, &re) || ctx.Err() != nil {
			return err
		}
		r.log.Debug("registry request failed, retrying", "op", op, "blob", b.id, "attempt", attempt+1, "err", err)
	}
	return fmt.Errorf("backend: registry %s of blob %s failed after %d attempts: %w", op, b.id, r.cfg.RetryLimit+1, last)
}

func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt-1, 6)
	d = min(d, 5*time.Second)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// attempt makes one try, handling auth challenges and the scheme probe.
func (b *registryBlob) attempt(ctx context.Context, op, method, rng string, handle func(*http.Response) error) error {
	r := b.r
	if len(r.mirrors) > 0 {
		if b.viaMirrors(ctx, method, rng, op, handle) {
			return nil
		}
	}
	r.mu.Lock()
	redirected := r.redirects[b.id]
	r.mu.Unlock()
	if redirected != "" {
		resp, err := b.send(ctx, method, redirected, rng, "")
		if err == nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound) {
			// An expired signed URL: forget it and ask the registry again.
			drain(resp)
			r.mu.Lock()
			delete(r.redirects, b.id)
			r.mu.Unlock()
		} else {
			return b.finish(resp, err, op, handle)
		}
	}
	var lastErr error
	for _, scheme := range r.schemes() {
		resp, err := b.authed(ctx, method, r.blobURL(scheme, b.id), rng)
		if err != nil && r.cfg.Scheme == "" && scheme == "https" && !isTimeout(err) {
			lastErr = err
			continue // auto scheme: try plain http
		}
		if err == nil && r.cfg.Scheme == "" {
			r.mu.Lock()
			r.scheme = scheme
			r.mu.Unlock()
		}
		if err == nil && method == http.MethodGet && r.redirected(resp) {
			r.mu.Lock()
			r.redirects[b.id] = r.rewriteRedirect(resp.Request.URL)
			r.mu.Unlock()
		}
		return b.finish(resp, err, op, handle)
	}
	return &errRetry{err: lastErr}
}

// redirected reports whether resp came from somewhere other than the
// registry or its proxy, i.e. a redirect to blob storage worth caching.
func (r *Registry) redirected(resp *http.Response) bool {
	if resp.Request == nil {
		return false
	}
	host := resp.Request.URL.Host
	if host == r.cfg.Host {
		return false
	}
	if r.cfg.Proxy.URL != "" {
		if p, err := url.Parse(r.cfg.Proxy.URL); err == nil && p.Host == host {
			return false
		}
	}
	return true
}

func (r *Registry) rewriteRedirect(u *url.URL) string {
	v := *u
	if r.cfg.BlobURLScheme != "" {
		v.Scheme = r.cfg.BlobURLScheme
	}
	if r.cfg.BlobRedirectedHost != "" {
		v.Host = r.cfg.BlobRedirectedHost
	}
	return v.String()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// authed sends a request to the registry, answering one auth challenge.
func (b *registryBlob) authed(ctx context.Context, method, u, rng string) (*http.Response, error) {
	r := b.r
	authz, err := b.authorization(ctx, false)
	if err != nil {
		return nil, err
	}
	resp, err := b.send(ctx, method, u, rng, authz)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	ch, perr := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	drain(resp)
	if perr != nil {
		return nil, &HTTPError{Status: http.StatusUnauthorized, Op: "auth (" + perr.Error() + ")"}
	}
	r.mu.Lock()
	r.challenge = &ch
	r.mu.Unlock()
	if authz, err = b.authorization(ctx, true); err != nil {
		return nil, err
	}
	return b.send(ctx, method, u, rng, authz)
}

// authorization returns the Authorization header for the last challenge;
// force refreshes a bearer token.
func (b *registryBlob) authorization(ctx context.Context, force bool) (string, error) {
	r := b.r
	if r.tokens.static {
		return "Bearer " + r.tokens.token, nil
	}
	r.mu.Lock()
	ch := r.challenge
	r.mu.Unlock()
	if ch == nil {
		return "", nil
	}
	switch ch.Scheme {
	case "basic":
		if r.creds == nil {
			return "", &HTTPError{Status: http.StatusUnauthorized, Op: "auth (basic auth requested, no credentials configured)"}
		}
		req := http.Request{Header: http.Header{}}
		req.SetBasicAuth(r.creds.user, r.creds.pass)
		return req.Header.Get("Authorization"), nil
	case "bearer":
		tok, err := r.tokens.get(ctx, *ch, force)
		if err != nil {
			return "", &errRetry{err: fmt.Errorf("backend: registry %s: %w", r.cfg.Host, err)}
		}
		return "Bearer " + tok, nil
	}
	return "", &HTTPError{Status: http.StatusUnauthorized, Op: "auth (unsupported scheme " + ch.Scheme + ")"}
}

// send performs one HTTP exchange. The response body is bounded by the
// idle timeout: a stalled body fails the read.
func (b *registryBlob) send(ctx context.Context, method, u, rng, authz string) (*http.Response, error) {
	r := b.r
	target, err := r.viaProxy(u)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(rctx, method, target, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("User-Agent", "gonydus-nydusd")
	resp, err := r.client.Do(req)
	if err != nil && r.cfg.Proxy.URL != "" && r.cfg.Proxy.Fallback && target != u {
		r.log.Warn("registry proxy failed, falling back to the registry", "proxy", r.cfg.Proxy.URL, "err", redactURLError(err))
		cancel()
		return b.sendDirect(ctx, method, u, rng, authz)
	}
	if err != nil {
		cancel()
		return nil, &errRetry{err: fmt.Errorf("backend: registry %s: %w", method, redactURLError(err))}
	}
	resp.Body = newIdleBody(resp.Body, r.timeout, cancel)
	return resp, nil
}

func (b *registryBlob) sendDirect(ctx context.Context, method, u, rng, authz string) (*http.Response, error) {
	var h map[string]string
	if authz != "" {
		h = map[string]string{"Authorization": authz}
	}
	return b.sendHeaders(ctx, method, u, rng, h)
}

// sendHeaders sends one request with extra headers, directly.
func (b *registryBlob) sendHeaders(ctx context.Context, method, u, rng string, headers map[string]string) (*http.Response, error) {
	r := b.r
	rctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(rctx, method, u, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		cancel()
		return nil, &errRetry{err: fmt.Errorf("backend: registry %s: %w", method, redactURLError(err))}
	}
	resp.Body = newIdleBody(resp.Body, r.timeout, cancel)
	return resp, nil
}

// viaProxy rewrites a registry URL to go through the configured proxy.
func (r *Registry) viaProxy(u string) (string, error) {
	if r.cfg.Proxy.URL == "" {
		return u, nil
	}
	p, err := url.Parse(r.cfg.Proxy.URL)
	if err != nil {
		return "", fmt.Errorf("backend: registry proxy url: %w", err)
	}
	t, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	if t.Host != r.cfg.Host {
		return u, nil // redirected blob storage is fetched directly
	}
	t.Scheme, t.Host = p.Scheme, p.Host
	if r.cfg.Proxy.UseHTTP {
		t.Scheme = "http"
	}
	return t.String(), nil
}

// finish classifies a response and runs handle on success.
func (b *registryBlob) finish(resp *http.Response, err error, op string, handle func(*http.Response) error) error {
	if err != nil {
		return err
	}
	defer drain(resp)
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent:
		return handle(resp)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return &errRetry{err: &HTTPError{Status: resp.StatusCode, Op: op}, after: retryAfter(resp.Header.Get("Retry-After"))}
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %s (%v)", ErrNotFound, b.id, &HTTPError{Status: resp.StatusCode, Op: op})
	case resp.StatusCode == http.StatusUnauthorized:
		// Still unauthorized after answering the challenge: maybe the token
		// expired in between; one more attempt fetches a fresh one.
		b.r.mu.Lock()
		b.r.tokens.mu.Lock()
		b.r.tokens.expires = time.Time{}
		b.r.tokens.mu.Unlock()
		b.r.mu.Unlock()
		return &errRetry{err: &HTTPError{Status: resp.StatusCode, Op: op}}
	}
	return &HTTPError{Status: resp.StatusCode, Op: op}
}

func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

// ReadAt implements Blob with one Range request per call.
func (b *registryBlob) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	return readRange(ctx, b, b.Size, p, off, func(rng string, h func(*http.Response) error) error {
		return b.do(ctx, "range read", http.MethodGet, rng, h)
	})
}

// readRange reads p at off with one Range request made by send, checking
// the response range and the body length.
// Ranges are clamped to the blob size (learnt once, by HEAD): registries
// may answer 416 instead of truncating a range past the end.
func readRange(ctx context.Context, b *registryBlob, size func(context.Context) (int64, error), p []byte, off int64, send func(rng string, h func(*http.Response) error) error) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if off < 0 {
		return 0, fmt.Errorf("backend: negative offset %d", off)
	}
	total, err := size(ctx)
	if err != nil {
		return 0, err
	}
	if off >= total {
		return 0, io.EOF
	}
	full := len(p)
	p = p[:min(int64(len(p)), total-off)]
	start := time.Now()
	var n int
	rng := fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1)
	err = send(rng, func(resp *http.Response) error {
		n = 0
		want := len(p)
		switch resp.StatusCode {
		case http.StatusPartialContent:
			first, last, total, err := parseContentRange(resp.Header.Get("Content-Range"))
			if err != nil {
				return fmt.Errorf("backend: blob %s: %w", b.id, err)
			}
			if first != off || last != off+int64(len(p))-1 {
				return fmt.Errorf("backend: blob %s: asked for %s, got Content-Range %q", b.id, rng, resp.Header.Get("Content-Range"))
			}
			if total >= 0 {
				b.setSize(total)
			}
			want = int(last - first + 1)
		case http.StatusOK:
			// The server ignored Range: only usable from the start.
			if off != 0 {
				return fmt.Errorf("backend: blob %s: server ignored Range %s (HTTP 200)", b.id, rng)
			}
			if resp.ContentLength >= 0 {
				b.setSize(resp.ContentLength)
				want = int(min(resp.ContentLength, int64(len(p))))
			}
		}
		k, err := io.ReadFull(resp.Body, p[:want])
		n = k
		if err != nil {
			return &errRetry{err: fmt.Errorf("backend: blob %s: body ended after %d of %d bytes: %w", b.id, k, want, err)}
		}
		return nil
	})
	b.r.m.record(n, time.Since(start), err)
	if err != nil {
		return 0, err
	}
	if n < full {
		return n, io.EOF
	}
	return n, nil
}

func (b *registryBlob) setSize(n int64) {
	b.mu.Lock()
	b.size = n
	b.mu.Unlock()
}

// Size implements Blob with a HEAD request (cached).
func (b *registryBlob) Size(ctx context.Context) (int64, error) {
	b.mu.Lock()
	s := b.size
	b.mu.Unlock()
	if s >= 0 {
		return s, nil
	}
	err := b.do(ctx, "size", http.MethodHead, "", func(resp *http.Response) error {
		if resp.ContentLength < 0 {
			return fmt.Errorf("backend: registry blob %s: HEAD without Content-Length", b.id)
		}
		b.setSize(resp.ContentLength)
		return nil
	})
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.size, nil
}
