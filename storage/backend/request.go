package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxRetryAfter bounds how long a server's Retry-After is honoured.
const maxRetryAfter = 30 * time.Second

// registryBlob is one blob of a Registry, or of an HTTPProxy when fixed
// is set (then requests go to that URL, without auth, mirrors or
// redirect caching).
type registryBlob struct {
	r     *Registry
	id    string
	fixed string

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
	Backend string // "registry" or "http-proxy"
	Op      string
	Status  int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("backend: %s %s: HTTP %d %s", e.Backend, e.Op, e.Status, http.StatusText(e.Status))
}

func (b *registryBlob) httpError(op string, status int) *HTTPError {
	return &HTTPError{Backend: b.r.kind, Op: op, Status: status}
}

// do runs one logical request with retries and backoff (or the server's
// Retry-After); handle consumes a successful response.
func (b *registryBlob) do(ctx context.Context, op string, method string, rng string, handle func(*http.Response) error) error {
	r := b.r
	var last error
	for attempt := 0; attempt <= r.cfg.RetryLimit; attempt++ {
		if attempt > 0 {
			r.m.retry()
			wait := backoff(attempt)
			var re *errRetry
			if errors.As(last, &re) && re.after > 0 {
				wait = min(re.after, maxRetryAfter)
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
		r.log.Debug("backend request failed, retrying", "backend", r.kind, "op", op, "blob", b.id, "attempt", attempt+1, "err", err)
	}
	return fmt.Errorf("backend: %s %s of blob %s failed after %d attempts: %w", r.kind, op, b.id, r.cfg.RetryLimit+1, last)
}

// backoff is the exponential wait before attempt (from 1), with jitter.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt-1, 6)
	d = min(d, 5*time.Second)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// attempt makes one try: mirrors, then a cached redirect, then the
// registry (answering an auth challenge, probing the scheme).
func (b *registryBlob) attempt(ctx context.Context, op, method, rng string, handle func(*http.Response) error) error {
	r := b.r
	if b.fixed != "" {
		resp, err := b.sendHeaders(ctx, method, b.fixed, rng, nil)
		return b.finish(resp, err, op, handle)
	}
	if len(r.mirrors) > 0 && b.viaMirrors(ctx, method, rng, op, handle) {
		return nil
	}
	if redirected := r.cachedRedirect(b.id); redirected != "" {
		resp, err := b.sendHeaders(ctx, method, redirected, rng, nil)
		if err != nil || (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound) {
			return b.finish(resp, err, op, handle)
		}
		// An expired signed URL: forget it and ask the registry again.
		drain(resp)
		r.setRedirect(b.id, "")
	}
	var lastErr error
	for _, scheme := range r.schemes() {
		resp, err := b.authed(ctx, method, r.blobURL(scheme, b.id), rng)
		if r.cfg.Scheme == "" && scheme == "https" && r.mayFallBackToHTTP(err) {
			lastErr = err
			continue // auto scheme: the server speaks plain http
		}
		if err == nil && r.cfg.Scheme == "" {
			r.mu.Lock()
			r.scheme = scheme
			r.mu.Unlock()
		}
		if err == nil && method == http.MethodGet && r.redirected(resp) {
			r.setRedirect(b.id, r.rewriteRedirect(resp.Request.URL))
		}
		return b.finish(resp, err, op, handle)
	}
	return &errRetry{err: lastErr}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// authed sends a request to the registry, answering one auth challenge.
func (b *registryBlob) authed(ctx context.Context, method, u, rng string) (*http.Response, error) {
	r := b.r
	authz, err := b.authorization(ctx, "", u)
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
		return nil, b.httpError("auth ("+perr.Error()+")", http.StatusUnauthorized)
	}
	r.mu.Lock()
	r.challenge = &ch
	r.mu.Unlock()
	if authz, err = b.authorization(ctx, authz, u); err != nil {
		return nil, err
	}
	return b.send(ctx, method, u, rng, authz)
}

// authorization returns the Authorization header for the last challenge,
// for a request to u; refused is the header a request was just refused
// with ("" if none), so a bearer token equal to it is replaced.
// Credentials and tokens obtained with them never go over plain HTTP
// unless the configuration allows it (plainAllowed).
func (b *registryBlob) authorization(ctx context.Context, refused, u string) (string, error) {
	r := b.r
	r.mu.Lock()
	ch := r.challenge
	r.mu.Unlock()
	if ch == nil && !r.tokens.static {
		return "", nil
	}
	if strings.HasPrefix(u, "http://") && !r.plainAllowed(r.cfg.Host) && (r.tokens.static || r.creds != nil) {
		return "", b.httpError(`auth (credentials over plain HTTP refused; set scheme "http" to allow it)`, http.StatusUnauthorized)
	}
	if r.tokens.static {
		return "Bearer " + r.tokens.token, nil
	}
	switch ch.Scheme {
	case "basic":
		if r.creds == nil || (r.creds.user == "" && r.creds.pass == "") {
			return "", b.httpError("auth (basic auth requested, no user and password configured)", http.StatusUnauthorized)
		}
		req := http.Request{Header: http.Header{}}
		req.SetBasicAuth(r.creds.user, r.creds.pass)
		return req.Header.Get("Authorization"), nil
	case "bearer":
		stale, _ := strings.CutPrefix(refused, "Bearer ")
		tok, err := r.tokens.get(ctx, *ch, stale)
		var he *HTTPError
		if errors.As(err, &he) && (he.Status == http.StatusUnauthorized || he.Status == http.StatusForbidden) {
			return "", err // wrong credentials: no use retrying
		}
		if err != nil {
			return "", &errRetry{err: fmt.Errorf("backend: registry %s: %w", r.cfg.Host, err)}
		}
		return "Bearer " + tok, nil
	}
	return "", b.httpError("auth (unsupported scheme "+ch.Scheme+")", http.StatusUnauthorized)
}

// send sends a registry request, through the proxy when one is configured
// and healthy, falling back to the registry when allowed.
func (b *registryBlob) send(ctx context.Context, method, u, rng, authz string) (*http.Response, error) {
	r := b.r
	h := http.Header{}
	if authz != "" {
		h.Set("Authorization", authz)
	}
	if target := r.proxy.route(u, r.cfg.Host, r.client); target != "" {
		resp, err := b.sendHeaders(ctx, method, target, rng, h)
		failed := err != nil || resp.StatusCode >= 500
		if !failed || !r.proxy.fallback {
			r.proxy.result(!failed)
			return resp, err
		}
		r.proxy.result(false)
		if err == nil {
			err = b.httpError("via proxy", resp.StatusCode)
			drain(resp)
		}
		r.log.Warn("registry proxy failed, falling back to the registry", "proxy", r.proxy.base.Host, "err", err)
	}
	return b.sendHeaders(ctx, method, u, rng, h)
}

// sendHeaders performs one HTTP exchange with extra headers. The response
// body is bounded by the idle timeout: a stalled body fails the read.
func (b *registryBlob) sendHeaders(ctx context.Context, method, u, rng string, headers http.Header) (*http.Response, error) {
	r := b.r
	// timeout bounds the whole exchange, body included, as upstream's does
	// (reqwest's total timeout): a server that drips bytes cannot hold a
	// read forever, however steadily it drips.
	rctx, cancel := context.WithTimeout(ctx, r.timeout)
	req, err := http.NewRequestWithContext(rctx, method, u, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	for k, v := range headers {
		req.Header[k] = v
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	req.Header.Set("User-Agent", "gonydus-nydusd")
	resp, err := r.client.Do(req)
	if err != nil {
		cancel()
		return nil, &errRetry{err: fmt.Errorf("backend: %s %s: %w", r.kind, method, redactURLError(err))}
	}
	resp.Body = newIdleBody(resp.Body, r.timeout, cancel)
	return resp, nil
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
		return &errRetry{err: b.httpError(op, resp.StatusCode), after: retryAfter(resp.Header.Get("Retry-After"))}
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %s (%w)", ErrNotFound, b.id, b.httpError(op, resp.StatusCode))
	case resp.StatusCode == http.StatusUnauthorized && b.fixed == "":
		// Still unauthorized after answering the challenge: maybe the token
		// expired in between; one more attempt fetches a fresh one.
		b.r.tokens.expire()
		return &errRetry{err: b.httpError(op, resp.StatusCode)}
	}
	return b.httpError(op, resp.StatusCode)
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(min(s, 1<<31)) * time.Second // no overflow
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
