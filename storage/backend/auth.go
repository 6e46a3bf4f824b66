package backend

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// challenge is a parsed WWW-Authenticate header.
type challenge struct {
	Scheme string // "basic" or "bearer" (lower case)
	Params map[string]string
}

// parseChallenge parses `Bearer realm="...",service="...",scope="..."`.
func parseChallenge(h string) (challenge, error) {
	h = strings.TrimSpace(h)
	scheme, rest, _ := strings.Cut(h, " ")
	c := challenge{Scheme: strings.ToLower(scheme), Params: map[string]string{}}
	if c.Scheme == "" {
		return c, errors.New("empty WWW-Authenticate")
	}
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			return c, fmt.Errorf("malformed WWW-Authenticate parameter %q", rest)
		}
		key = strings.ToLower(strings.TrimSpace(key))
		var val string
		if strings.HasPrefix(after, `"`) {
			end := 1
			var b strings.Builder
			for ; end < len(after); end++ {
				ch := after[end]
				if ch == '\\' && end+1 < len(after) {
					end++
					b.WriteByte(after[end])
					continue
				}
				if ch == '"' {
					break
				}
				b.WriteByte(ch)
			}
			if end >= len(after) {
				return c, errors.New("unterminated quoted string in WWW-Authenticate")
			}
			val, rest = b.String(), after[end+1:]
		} else {
			val, rest, _ = strings.Cut(after, ",")
			val = strings.TrimSpace(val)
			rest = "," + rest
		}
		c.Params[key] = val
		rest = strings.TrimSpace(rest)
		rest = strings.TrimPrefix(rest, ",")
	}
	return c, nil
}

// credentials are a user and password, never printed.
type credentials struct {
	user, pass string
}

func (c *credentials) String() string { return "credentials(redacted)" }

// decodeAuth decodes base64 "user:pass".
func decodeAuth(s string) (*credentials, error) {
	if s == "" {
		return nil, nil
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("auth is not base64 of user:password")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return nil, errors.New("auth is not base64 of user:password")
	}
	return &credentials{user: user, pass: pass}, nil
}

// dockerConfigAuth finds host's credentials in docker's config.json.
func dockerConfigAuth(env func(string) string, host string) (*credentials, error) {
	dir := env("DOCKER_CONFIG")
	if dir == "" {
		home := env("HOME")
		if home == "" {
			return nil, nil
		}
		dir = filepath.Join(home, ".docker")
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, nil
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, errors.New("docker config.json is not valid JSON")
	}
	for _, key := range []string{host, "https://" + host, "http://" + host, "https://" + host + "/v1/", "https://" + host + "/v2/"} {
		if a, ok := cfg.Auths[key]; ok && a.Auth != "" {
			return decodeAuth(a.Auth)
		}
	}
	if host == "docker.io" || host == "registry-1.docker.io" || host == "index.docker.io" {
		if a, ok := cfg.Auths["https://index.docker.io/v1/"]; ok {
			return decodeAuth(a.Auth)
		}
	}
	return nil, nil
}

// tokenSource fetches and caches bearer tokens for one registry.
type tokenSource struct {
	client *http.Client
	creds  *credentials

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
	q := u.Query()
	if s := ch.Params["service"]; s != "" {
		q.Set("service", s)
	}
	if s := ch.Params["scope"]; s != "" {
		q.Set("scope", s)
	}
	q.Set("client_id", "nydus-registry-client")
	resp, err := t.fetch(ctx, u, q)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("token response from %s is not JSON", u.Host)
	}
	tok := body.Token
	if tok == "" {
		tok = body.AccessToken
	}
	if tok == "" {
		return "", fmt.Errorf("token response from %s has no token", u.Host)
	}
	ttl := time.Duration(min(body.ExpiresIn, 1<<31)) * time.Second // no overflow
	if ttl <= 0 {
		ttl = 600 * time.Second
	}
	t.token, t.expires = tok, time.Now().Add(ttl-refreshMargin(ttl))
	return tok, nil
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

// fetch asks the realm u for a token with parameters q: with credentials
// first by an OAuth2 POST form, falling back to GET (remembered per realm
// host) when the server refuses it; anonymously by GET.
func (t *tokenSource) fetch(ctx context.Context, u *url.URL, q url.Values) (*http.Response, error) {
	if t.creds != nil && !t.getOnly[u.Host] {
		form := url.Values{}
		for k, v := range q {
			form[k] = v
		}
		form.Set("grant_type", "password")
		form.Set("username", t.creds.user)
		form.Set("password", t.creds.pass)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(t.creds.user, t.creds.pass)
		resp, err := t.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("token request to %s: %w", u.Host, redactURLError(err))
		}
		if resp.StatusCode == http.StatusOK {
			return resp, nil
		}
		drain(resp)
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
			if t.getOnly == nil {
				t.getOnly = map[string]bool{}
			}
			t.getOnly[u.Host] = true // no OAuth2 POST here
		}
	}
	g := *u
	g.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.String(), nil)
	if err != nil {
		return nil, err
	}
	if t.creds != nil {
		req.SetBasicAuth(t.creds.user, t.creds.pass)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token request to %s: %w", u.Host, redactURLError(err))
	}
	if resp.StatusCode != http.StatusOK {
		drain(resp)
		return nil, &HTTPError{Backend: "registry", Op: "token request to " + u.Host, Status: resp.StatusCode}
	}
	return resp, nil
}

// checkRedirect follows a realm's redirects only where the credentials
// stay safe: a POST (whose form carries the password) never leaves the
// realm's host, no redirect leads to plain HTTP that the realm itself
// could not use, and Authorization is dropped on any other host.
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
