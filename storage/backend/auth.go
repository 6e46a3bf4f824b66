package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	dockerauth "github.com/containerd/containerd/v2/core/remotes/docker/auth"
	remoteserrors "github.com/containerd/containerd/v2/core/remotes/errors"
)

// challenge is a parsed WWW-Authenticate header.
type challenge struct {
	Scheme string // "basic" or "bearer" (lower case)
	Params map[string]string
}

// parseChallenge parses `Bearer realm="...",service="...",scope="..."` with
// containerd's parser, preferring a bearer challenge to a basic one.
func parseChallenge(h string) (challenge, error) {
	if strings.TrimSpace(h) == "" {
		return challenge{}, errors.New("empty WWW-Authenticate")
	}
	var basic *challenge
	for _, c := range dockerauth.ParseAuthHeader(http.Header{"Www-Authenticate": {h}}) {
		switch c.Scheme {
		case dockerauth.BearerAuth:
			return challenge{Scheme: "bearer", Params: c.Parameters}, nil
		case dockerauth.BasicAuth:
			basic = &challenge{Scheme: "basic", Params: c.Parameters}
		}
	}
	if basic != nil {
		return *basic, nil
	}
	return challenge{}, errors.New("WWW-Authenticate has no basic or bearer challenge")
}

// tokenClientID is the OAuth2 client_id of the token requests.
const tokenClientID = "nydus-registry-client"

// maxTokenResponse bounds what is read of a token server's answer.
const maxTokenResponse = 1 << 20

// tokenSource fetches and caches bearer tokens for one registry; the
// requests themselves are containerd's (OAuth2 POST, GET).
type tokenSource struct {
	client *http.Client
	creds  *credentials
	// lookup asks the keychain the credentials came from again, when the
	// realm refuses them (nil: configured credentials, asked once).
	lookup func(context.Context) (*credentials, error)

	mu      sync.Mutex
	token   string
	expires time.Time
	static  bool // registry_token: never refreshed
	// allowPlain lets realms on other hosts than loopback be plain HTTP:
	// the configuration asked for plain HTTP.
	allowPlain bool
	getOnly    map[string]bool // realm hosts that refused a POST
}

// get returns the cached token, or fetches one for the challenge when
// there is none, it is about to expire, or it is stale (the token a
// request was just refused with; concurrent requests refused with the
// same token share one refresh).
func (t *tokenSource) get(ctx context.Context, ch challenge, stale string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.static {
		return t.token, nil
	}
	if t.token != "" && t.token != stale && time.Now().Before(t.expires) {
		return t.token, nil
	}
	realm := ch.Params["realm"]
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", errors.New("bearer challenge has no usable realm")
	}
	if u.Scheme == "http" && !t.allowPlain && !IsLoopbackHost(u.Host) {
		return "", fmt.Errorf("bearer realm %s is plain HTTP: refused (set scheme \"http\" to allow it)", u.Host)
	}
	to := dockerauth.TokenOptions{Realm: u.String(), Service: ch.Params["service"], Scopes: strings.Fields(ch.Params["scope"])}
	tok, expiresIn, err := t.fetch(ctx, to, u.Host)
	if err != nil && t.refreshCredentials(ctx, err) {
		tok, expiresIn, err = t.fetch(ctx, to, u.Host)
	}
	if err != nil {
		return "", err
	}
	ttl := time.Duration(min(max(expiresIn, 0), 1<<31)) * time.Second // no overflow
	if ttl <= 0 {
		ttl = 600 * time.Second
	}
	t.token, t.expires = tok, time.Now().Add(ttl-refreshMargin(ttl))
	return tok, nil
}

// refreshCredentials asks the keychain again after the realm refused its
// credentials with err, and reports whether it answered with others.
func (t *tokenSource) refreshCredentials(ctx context.Context, err error) bool {
	var he *HTTPError
	if t.lookup == nil || t.creds == nil || !errors.As(err, &he) || (he.Status != http.StatusUnauthorized && he.Status != http.StatusForbidden) {
		return false
	}
	fresh, lerr := t.lookup(ctx)
	if lerr != nil || fresh == nil || *fresh == *t.creds {
		return false
	}
	t.creds = fresh
	return true
}

// refreshMargin is how long before its expiry a token is replaced, so a
// read does not cross it: 20 s plus a jitter of up to a tenth of the
// lifetime, at most 300 s, and at most half of a short lifetime.
func refreshMargin(ttl time.Duration) time.Duration {
	m := 20*time.Second + time.Duration(rand.Int64N(int64(ttl/10)+1))
	m = min(m, 300*time.Second)
	if m > ttl/2 {
		m = ttl / 2
	}
	return m
}

// fetch asks the realm on host for a token: with credentials first by an
// OAuth2 POST (password grant, or refresh-token grant with an identity
// token), falling back to GET with Basic auth (remembered per realm host)
// when the server refuses it; anonymously by GET. It returns the token
// and its announced lifetime in seconds.
func (t *tokenSource) fetch(ctx context.Context, to dockerauth.TokenOptions, host string) (string, int, error) {
	client := *t.client
	client.Transport = limitedBody{base: client.Transport, limit: maxTokenResponse}
	tokenHeaders := http.Header{"User-Agent": {"gonydus-nydusd"}}
	if c := t.creds; c != nil {
		if c.identityToken != "" {
			to.Username, to.Secret = "", c.identityToken
		} else {
			to.Username, to.Secret = c.user, c.pass
		}
	}
	if to.Secret != "" && !t.getOnly[host] {
		resp, err := dockerauth.FetchTokenWithOAuth(ctx, &client, tokenHeaders, tokenClientID, to)
		if err == nil {
			if resp.RefreshToken != "" && t.creds != nil && t.creds.identityToken != "" {
				c := *t.creds
				c.identityToken = resp.RefreshToken // rotated by the server
				t.creds = &c
			}
			return resp.AccessToken, resp.ExpiresInSeconds, nil
		}
		var st remoteserrors.ErrUnexpectedStatus
		getOnly := errors.Is(err, dockerauth.ErrNoToken) // answered POST with a GET-style "token"
		switch {
		case errors.As(err, &st):
			switch st.StatusCode {
			case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
				getOnly = true
			}
		case !getOnly:
			return "", 0, t.fetchError(host, err)
		}
		if getOnly {
			if t.getOnly == nil {
				t.getOnly = map[string]bool{}
			}
			t.getOnly[host] = true // no OAuth2 POST here
		}
	}
	resp, err := dockerauth.FetchToken(ctx, &client, tokenHeaders, to)
	if err != nil {
		return "", 0, t.fetchError(host, err)
	}
	return resp.Token, resp.ExpiresInSeconds, nil
}

// fetchError maps a token request's failure to our errors, without the
// request's URL (some token servers take credentials in the query).
func (t *tokenSource) fetchError(host string, err error) error {
	var st remoteserrors.ErrUnexpectedStatus
	switch {
	case errors.As(err, &st):
		return &HTTPError{Backend: "registry", Op: "token request to " + host, Status: st.StatusCode}
	case errors.Is(err, dockerauth.ErrNoToken):
		return fmt.Errorf("token response from %s has no token", host)
	case errors.Is(err, errTokenResponseTooLarge):
		return fmt.Errorf("token response from %s: %w", host, errTokenResponseTooLarge)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("token request to %s: %w", host, redactURLError(err))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("token request to %s: %w", host, err)
	}
	return fmt.Errorf("token response from %s is not JSON", host)
}

var errTokenResponseTooLarge = fmt.Errorf("token response larger than %d bytes", maxTokenResponse)

// limitedBody fails a response body read past limit bytes.
type limitedBody struct {
	base  http.RoundTripper
	limit int64
}

func (l limitedBody) RoundTrip(req *http.Request) (*http.Response, error) {
	base := l.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedReader{rc: resp.Body, left: l.limit}
	return resp, nil
}

type limitedReader struct {
	rc   io.ReadCloser
	left int64
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, errTokenResponseTooLarge
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	return n, err
}

func (r *limitedReader) Close() error { return r.rc.Close() }

// checkRedirect follows a realm's redirects only where the credentials
// stay safe: a POST (whose form carries the password or refresh token)
// never leaves the realm's host, no redirect leads to plain HTTP that the
// realm itself could not use, and Authorization is dropped on any other
// host.
func (t *tokenSource) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("too many redirects")
	}
	if req.URL.Scheme == "http" && !t.allowPlain && !IsLoopbackHost(req.URL.Host) {
		return fmt.Errorf("token realm redirected to plain HTTP %s: refused", req.URL.Host)
	}
	if req.URL.Host != via[0].URL.Host {
		if req.Method == http.MethodPost && t.creds != nil {
			return fmt.Errorf("token realm %s redirected the credential form to %s: refused", via[0].URL.Host, req.URL.Host)
		}
		req.Header.Del("Authorization")
	}
	return nil
}

// redactURLError keeps a url.Error's operation and cause but drops the URL
// query, which may carry credentials on some token servers.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		u, perr := url.Parse(ue.URL)
		host := "?"
		if perr == nil {
			host = u.Host
		}
		return fmt.Errorf("%s %s: %w", ue.Op, host, ue.Err)
	}
	return err
}

// expire makes the next get fetch a new token.
func (t *tokenSource) expire() {
	t.mu.Lock()
	t.expires = time.Time{}
	t.mu.Unlock()
}
