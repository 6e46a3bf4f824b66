package testregistry

import (
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// InProcess is go-containerregistry's registry on an httptest server on
// 127.0.0.1, optionally behind Basic or Bearer auth. Uploads are never
// authenticated, so Push works whatever the auth mode.
type InProcess struct {
	Registry

	inner http.Handler
	srv   *httptest.Server
	o     inOptions

	mu     sync.Mutex
	tokens map[string]time.Time // token -> server-side expiry
	grants map[string]int       // token endpoint outcomes (see Grants)
	gate   chan struct{}        // non-nil: blob GETs wait for it to close (Hold)
	held   atomic.Int64         // blob GETs waiting at the gate

	blobReads     atomic.Int64 // GETs of blobs that reached the registry
	blobBytes     atomic.Int64 // body bytes those GETs were sent
	tokenPosts    atomic.Int64
	tokenGets     atomic.Int64
	refreshGrants atomic.Int64
	rejectedAuths atomic.Int64
}

// Option configures an InProcess registry.
type Option func(*inOptions)

type inOptions struct {
	auth         string // "", "basic", "bearer"
	user, pass   string
	tokenTTL     time.Duration // server-side validity
	expiresIn    int           // advertised expires_in (0 = omitted)
	tokenGETOnly bool
	refreshToken string // accepted by the OAuth2 refresh_token grant
	referrers    bool
	uploadAuth   bool
	realmOfReq   bool
}

// WithBasic demands HTTP Basic auth with user and pass for reads.
func WithBasic(user, pass string) Option {
	return func(o *inOptions) { o.auth, o.user, o.pass = "basic", user, pass }
}

// WithBearer demands bearer tokens for reads, issued by the registry's
// /token endpoint to user and pass (empty user: anonymous tokens). Tokens
// stay valid for ttl on the server and advertise expiresIn seconds (0
// leaves expires_in out of the response).
func WithBearer(user, pass string, ttl time.Duration, expiresIn int) Option {
	return func(o *inOptions) {
		o.auth, o.user, o.pass, o.tokenTTL, o.expiresIn = "bearer", user, pass, ttl, expiresIn
	}
}

// WithTokenGETOnly makes the token endpoint refuse POST (405), as old
// token servers do, so clients must fall back to GET.
func WithTokenGETOnly() Option { return func(o *inOptions) { o.tokenGETOnly = true } }

// WithRefreshToken makes the token endpoint also accept an OAuth2 POST
// with grant_type=refresh_token and this refresh token (docker's
// "identitytoken") for the WithBearer user.
func WithRefreshToken(tok string) Option { return func(o *inOptions) { o.refreshToken = tok } }

// WithUploadAuth makes uploads need auth too (by default they never do,
// so Push works whatever the auth mode).
func WithUploadAuth() Option { return func(o *inOptions) { o.uploadAuth = true } }

// WithRequestRealm names the token realm on the host each request was
// sent to, for a registry served behind another server (clients refuse a
// realm on another loopback host).
func WithRequestRealm() Option { return func(o *inOptions) { o.realmOfReq = true } }

// WithReferrers turns on the OCI referrers API (GET /v2/<repo>/referrers/<digest>).
func WithReferrers() Option { return func(o *inOptions) { o.referrers = true } }

// RefreshGrants returns how many tokens were issued for the refresh token.
func (r *InProcess) RefreshGrants() int64 { return r.refreshGrants.Load() }

// Start runs an in-process registry until the test ends.
func Start(t testing.TB, opts ...Option) *InProcess {
	t.Helper()
	r := &InProcess{tokens: map[string]time.Time{}, grants: map[string]int{}}
	for _, f := range opts {
		f(&r.o)
	}
	r.inner = registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(r.o.referrers))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Listener.Close()
	r.srv.Listener = l
	r.srv.Start()
	r.URL = r.srv.URL
	r.Host = strings.TrimPrefix(r.srv.URL, "http://")
	t.Cleanup(func() { r.Release(); r.srv.CloseClientConnections(); r.srv.Close() })
	return r
}

// Handler returns the registry without the auth layer (e.g. to serve the
// same content as a mirror).
func (r *InProcess) Handler() http.Handler { return r.inner }

// BlobReads returns how many blob GETs reached the registry past auth.
func (r *InProcess) BlobReads() int64 { return r.blobReads.Load() }

// BlobBytes returns how many body bytes blob GETs were sent.
func (r *InProcess) BlobBytes() int64 { return r.blobBytes.Load() }

// TokenRequests returns how many tokens were asked for by POST and by GET.
func (r *InProcess) TokenRequests() (post, get int64) {
	return r.tokenPosts.Load(), r.tokenGets.Load()
}

// Rejected returns how many requests were answered 401.
func (r *InProcess) Rejected() int64 { return r.rejectedAuths.Load() }

// AddToken makes tok a valid bearer token until the test ends (a
// pre-supplied registry_token).
func (r *InProcess) AddToken(tok string) {
	r.mu.Lock()
	r.tokens[tok] = time.Now().Add(24 * time.Hour)
	r.mu.Unlock()
}

// ExpireTokens invalidates every token issued so far.
func (r *InProcess) ExpireTokens() {
	r.mu.Lock()
	clear(r.tokens)
	r.mu.Unlock()
}

// ServeHTTP serves the registry with its auth layer and token endpoint
// (to put another server in front of it).
func (r *InProcess) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.serve(w, req) }

// Grants counts the token endpoint's answers by kind: "GET basic",
// "GET anonymous", "POST password", "POST refresh_token" for tokens
// issued, "denied" for requests refused.
func (r *InProcess) Grants() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.grants)
}

func (r *InProcess) serve(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/token" {
		r.serveToken(w, req)
		return
	}
	upload := strings.Contains(req.URL.Path, "/blobs/uploads/")
	if r.o.auth != "" && (!upload || r.o.uploadAuth) && !r.authorized(req) {
		r.rejectedAuths.Add(1)
		if r.o.auth == "basic" {
			w.Header().Set("WWW-Authenticate", `Basic realm="testregistry"`)
		} else {
			realm := r.URL + "/token"
			if r.o.realmOfReq {
				realm = "http://" + req.Host + "/token"
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="testregistry",scope="repository:`+repoOf(req.URL.Path)+`:pull"`)
		}
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
		return
	}
	if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/sha256:") {
		r.wait()
		r.blobReads.Add(1)
		w = &countingWriter{ResponseWriter: w, n: &r.blobBytes}
	}
	r.inner.ServeHTTP(w, req)
}

// countingWriter counts the body bytes written through it.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	k, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(k))
	return k, err
}

// repoOf extracts <repo> from /v2/<repo>/blobs/....
func repoOf(path string) string {
	p := strings.TrimPrefix(path, "/v2/")
	if i := strings.Index(p, "/blobs/"); i >= 0 {
		return p[:i]
	}
	if i := strings.Index(p, "/manifests/"); i >= 0 {
		return p[:i]
	}
	return ""
}

func (r *InProcess) authorized(req *http.Request) bool {
	if r.o.auth == "basic" {
		u, p, ok := req.BasicAuth()
		return ok && u == r.o.user && p == r.o.pass
	}
	tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	exp, ok := r.tokens[tok]
	return ok && time.Now().Before(exp)
}

// Tokens returns every token currently known to the registry (to check
// that none leaks into logs or errors).
func (r *InProcess) Tokens() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.tokens))
	for t := range r.tokens {
		out = append(out, t)
	}
	return out
}
