package backend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// testRegistry is go-containerregistry's in-process registry behind a
// middleware that can demand auth and inject faults.
type testRegistry struct {
	t      *testing.T
	srv    *httptest.Server
	inner  http.Handler
	mu     sync.Mutex
	faults []func(w http.ResponseWriter, r *http.Request) bool // return true when handled
	// bearer auth: tokens issued by /token expire after tokenTTL.
	user, pass string
	tokenTTL   time.Duration
	tokens     map[string]time.Time
	basicOnly  bool
	gets       atomic.Int64
	tokenReqs  atomic.Int64
}

func newTestRegistry(t *testing.T) *testRegistry {
	tr := &testRegistry{t: t, inner: registry.New(registry.Logger(log.New(io.Discard, "", 0))), tokens: map[string]time.Time{}}
	tr.srv = httptest.NewServer(http.HandlerFunc(tr.serve))
	t.Cleanup(tr.srv.Close)
	return tr
}

func (tr *testRegistry) host() string { return strings.TrimPrefix(tr.srv.URL, "http://") }

func (tr *testRegistry) addFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	tr.mu.Lock()
	tr.faults = append(tr.faults, f)
	tr.mu.Unlock()
}

func (tr *testRegistry) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		tr.tokenReqs.Add(1)
		u, p, ok := r.BasicAuth()
		if !ok || u != tr.user || p != tr.pass {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		tok := fmt.Sprintf("tok-%d", rand.Int64())
		tr.mu.Lock()
		tr.tokens[tok] = time.Now().Add(tr.tokenTTL)
		tr.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"token": tok, "expires_in": 1})
		return
	}
	if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
		tr.gets.Add(1)
	}
	if tr.user != "" && strings.Contains(r.URL.Path, "/blobs/sha256:") && r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodPatch {
		if !tr.authorized(r) {
			if tr.basicOnly {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			} else {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="test",scope="repository:app:pull"`, tr.srv.URL))
			}
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	tr.mu.Lock()
	faults := tr.faults
	tr.mu.Unlock()
	for _, f := range faults {
		if f(w, r) {
			return
		}
	}
	tr.inner.ServeHTTP(w, r)
}

func (tr *testRegistry) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if tr.basicOnly {
		u, p, ok := r.BasicAuth()
		return ok && u == tr.user && p == tr.pass
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return false
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	exp, ok := tr.tokens[tok]
	return ok && time.Now().Before(exp)
}

// push uploads data as a blob of repo app and returns its id.
func (tr *testRegistry) push(data []byte) string {
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	resp, err := http.Post(tr.srv.URL+"/v2/app/blobs/uploads/", "application/octet-stream", nil)
	if err != nil {
		tr.t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = tr.srv.URL + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest=sha256:"+id, bytes.NewReader(data))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		tr.t.Fatalf("push: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	return id
}

func randomData(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(uint64(n), 5))
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return b
}

func newReg(t *testing.T, tr *testRegistry, extra map[string]any, opts ...Option) Backend {
	t.Helper()
	cfg := map[string]any{"host": tr.host(), "repo": "app", "scheme": "http", "timeout": 2, "connect_timeout": 2, "retry_limit": 3}
	for k, v := range extra {
		cfg[k] = v
	}
	raw, _ := json.Marshal(cfg)
	opts = append([]Option{WithEnv(func(string) string { return "" })}, opts...)
	b, err := New("registry", raw, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func readBack(t *testing.T, b Backend, id string, data []byte) {
	t.Helper()
	ctx := context.Background()
	blob, err := b.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	size, err := blob.Size(ctx)
	if err != nil || size != int64(len(data)) {
		t.Fatalf("size %d, %v; want %d", size, err, len(data))
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for range 20 {
		off := rng.IntN(len(data))
		n := 1 + rng.IntN(min(200_000, len(data)-off))
		buf := make([]byte, n)
		k, err := blob.ReadAt(ctx, buf, int64(off))
		if err != nil || k != n || !bytes.Equal(buf, data[off:off+n]) {
			t.Fatalf("read [%d,+%d): %d %v", off, n, k, err)
		}
	}
	// Past the end: short read with io.EOF.
	buf := make([]byte, 100)
	k, err := blob.ReadAt(ctx, buf, int64(len(data)-10))
	if k != 10 || !errors.Is(err, io.EOF) || !bytes.Equal(buf[:10], data[len(data)-10:]) {
		t.Fatalf("tail read: %d %v", k, err)
	}
}

func TestRegistryAnonymous(t *testing.T) {
	tr := newTestRegistry(t)
	data := randomData(1 << 20)
	id := tr.push(data)
	b := newReg(t, tr, nil)
	readBack(t, b, id, data)
	if m := b.Metrics(); m.ReadCount == 0 || m.ReadAmountTotal == 0 {
		t.Fatalf("metrics %+v", m)
	}
	if _, err := b.Open(context.Background(), "../etc/passwd"); err == nil {
		t.Fatal("path-like blob id accepted")
	}
	blob, _ := b.Open(context.Background(), strings.Repeat("0", 64))
	if _, err := blob.ReadAt(context.Background(), make([]byte, 10), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
}

func TestRegistryAutoScheme(t *testing.T) {
	tr := newTestRegistry(t)
	data := randomData(50_000)
	id := tr.push(data)
	b := newReg(t, tr, map[string]any{"scheme": ""})
	readBack(t, b, id, data) // https fails against a plain server: falls back to http
}

func TestRegistryBearerTokenExpiry(t *testing.T) {
	tr := newTestRegistry(t)
	data := randomData(300_000)
	id := tr.push(data)
	tr.user, tr.pass, tr.tokenTTL = "alice", "s3cret-pass", 300*time.Millisecond
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret-pass"))
	b := newReg(t, tr, map[string]any{"auth": auth}, WithLogger(log))
	readBack(t, b, id, data)
	time.Sleep(400 * time.Millisecond) // the server-side token expires; the client learns on the 401
	readBack(t, b, id, data)
	if tr.tokenReqs.Load() < 2 {
		t.Fatalf("token requests %d: expiry did not trigger a refresh", tr.tokenReqs.Load())
	}
	// Wrong password: a clear error that does not contain the secret.
	bad := newReg(t, tr, map[string]any{"auth": base64.StdEncoding.EncodeToString([]byte("alice:wrong-pass")), "retry_limit": 1}, WithLogger(log))
	blob, _ := bad.Open(context.Background(), id)
	_, err := blob.ReadAt(context.Background(), make([]byte, 10), 0)
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	for _, secret := range []string{"s3cret-pass", "wrong-pass", auth} {
		if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
			t.Fatalf("secret %q leaked: %v / %s", secret, err, logs.String())
		}
	}
}

func TestRegistryCredentialSources(t *testing.T) {
	tr := newTestRegistry(t)
	data := randomData(10_000)
	id := tr.push(data)
	tr.user, tr.pass, tr.basicOnly = "bob", "pw", true
	auth := base64.StdEncoding.EncodeToString([]byte("bob:pw"))
	// IMAGE_PULL_AUTH overrides a wrong configured auth.
	env := func(k string) string {
		if k == "IMAGE_PULL_AUTH" {
			return auth
		}
		return ""
	}
	b := newReg(t, tr, map[string]any{"auth": base64.StdEncoding.EncodeToString([]byte("bob:bad"))}, WithEnv(env))
	readBack(t, b, id, data)
	// docker config.json.
	dir := t.TempDir()
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, tr.host(), auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	b = newReg(t, tr, nil, WithEnv(func(k string) string {
		if k == "DOCKER_CONFIG" {
			return dir
		}
		return ""
	}))
	readBack(t, b, id, data)
}

func TestRegistryToken(t *testing.T) {
	tr := newTestRegistry(t)
	data := randomData(10_000)
	id := tr.push(data)
	tr.user, tr.pass, tr.tokenTTL = "x", "y", time.Hour
	tr.tokens["preset"] = time.Now().Add(time.Hour)
	b := newReg(t, tr, map[string]any{"registry_token": "preset"})
	readBack(t, b, id, data)
	if tr.tokenReqs.Load() != 0 {
		t.Fatal("registry_token should be used as is")
	}
}

// TestRegistryFaults injects one fault at a time: reads succeed after
// retries or fail clearly within the timeout.
func TestRegistryFaults(t *testing.T) {
	data := randomData(400_000)
	type fault struct {
		name    string
		inject  func(n *atomic.Int64) func(w http.ResponseWriter, r *http.Request) bool
		recover bool
	}
	isBlobGet := func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
	}
	faults := []fault{
		{"429 with Retry-After", func(n *atomic.Int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if isBlobGet(r) && n.Add(1) <= 2 {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(http.StatusTooManyRequests)
					return true
				}
				return false
			}
		}, true},
		{"500 then 503", func(n *atomic.Int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if isBlobGet(r) {
					switch n.Add(1) {
					case 1:
						w.WriteHeader(500)
						return true
					case 2:
						w.WriteHeader(503)
						return true
					}
				}
				return false
			}
		}, true},
		{"reset mid-body", func(n *atomic.Int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if isBlobGet(r) && n.Add(1) == 1 {
					hijackAfter(w, r, 1000, false)
					return true
				}
				return false
			}
		}, true},
		{"truncated body", func(n *atomic.Int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if isBlobGet(r) && n.Add(1) == 1 {
					hijackAfter(w, r, 5000, false)
					return true
				}
				return false
			}
		}, true},
		{"stalled body", func(n *atomic.Int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if isBlobGet(r) && n.Add(1) == 1 {
					hijackAfter(w, r, 1000, true)
					return true
				}
				return false
			}
		}, true},
		{"wrong Content-Range", func(n *atomic.Int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if isBlobGet(r) {
					w.Header().Set("Content-Range", "bytes 7-16/400000")
					w.WriteHeader(http.StatusPartialContent)
					w.Write(make([]byte, 10))
					return true
				}
				return false
			}
		}, false},
		{"always 503", func(n *atomic.Int64) func(http.ResponseWriter, *http.Request) bool {
			return func(w http.ResponseWriter, r *http.Request) bool {
				if isBlobGet(r) {
					w.WriteHeader(503)
					return true
				}
				return false
			}
		}, false},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			tr := newTestRegistry(t)
			id := tr.push(data)
			var n atomic.Int64
			tr.addFault(f.inject(&n))
			b := newReg(t, tr, map[string]any{"timeout": 1, "retry_limit": 3})
			blob, _ := b.Open(context.Background(), id)
			buf := make([]byte, 100_000)
			start := time.Now()
			k, err := blob.ReadAt(context.Background(), buf, 1234)
			elapsed := time.Since(start)
			if limit := 4*time.Second + 4*time.Second; elapsed > limit+2*time.Second {
				t.Fatalf("took %v (bound %v)", elapsed, limit)
			}
			if f.recover {
				if err != nil || k != len(buf) || !bytes.Equal(buf, data[1234:1234+len(buf)]) {
					t.Fatalf("did not recover: %d %v", k, err)
				}
			} else if err == nil {
				t.Fatal("fault not reported")
			}
			t.Logf("%v after %v (%d faulty responses)", err, elapsed.Round(time.Millisecond), n.Load())
		})
	}
}

// hijackAfter answers a range request with the right headers, sends the
// first n body bytes, then closes the connection (or stalls).
func hijackAfter(w http.ResponseWriter, r *http.Request, n int, stall bool) {
	var first, last int64
	fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last)
	h, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	conn, buf, err := h.Hijack()
	if err != nil {
		return
	}
	fmt.Fprintf(buf, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes %d-%d/400000\r\nContent-Length: %d\r\n\r\n", first, last, last-first+1)
	buf.Write(make([]byte, n))
	buf.Flush()
	if stall {
		time.Sleep(3 * time.Second)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

func TestRedirectToBlobStorage(t *testing.T) {
	data := randomData(200_000)
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("registry credentials sent to blob storage")
		}
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(data))
	}))
	defer storage.Close()
	tr := newTestRegistry(t)
	id := tr.push(data)
	var redirects atomic.Int64
	tr.addFault(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/blobs/sha256:") && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			redirects.Add(1)
			http.Redirect(w, r, storage.URL+"/signed/blob?sig=1", http.StatusTemporaryRedirect)
			return true
		}
		return false
	})
	b := newReg(t, tr, nil)
	readBack(t, b, id, data)
	if redirects.Load() > 3 {
		t.Fatalf("%d registry round trips: the redirect was not cached", redirects.Load())
	}
}

func TestHTTPProxyTCPAndUnix(t *testing.T) {
	data := randomData(100_000)
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/blobs/"+id {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, id, time.Time{}, bytes.NewReader(data))
	})
	tcp := httptest.NewServer(h)
	defer tcp.Close()
	sock := filepath.Join(t.TempDir(), "proxy.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	usrv := &http.Server{Handler: h}
	go usrv.Serve(l)
	defer usrv.Close()
	for _, addr := range []string{tcp.URL, sock} {
		raw, _ := json.Marshal(map[string]any{"addr": addr, "path": "blobs"})
		b, err := New("http-proxy", raw)
		if err != nil {
			t.Fatal(err)
		}
		readBack(t, b, id, data)
		b.Close()
	}
}

func TestLocalfs(t *testing.T) {
	dir, alt := t.TempDir(), t.TempDir()
	data := randomData(70_000)
	if err := os.WriteFile(filepath.Join(alt, "blobid"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(map[string]any{"dir": dir, "alt_dirs": []string{alt}})
	b, err := New("localfs", raw)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	readBack(t, b, "blobid", data)
	if _, err := b.Open(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	if _, err := New("oss", raw); err == nil {
		t.Fatal("unsupported backend type accepted")
	}
}

func FuzzParseChallenge(f *testing.F) {
	f.Add(`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`)
	f.Add(`Basic realm="x"`)
	f.Add(`Bearer realm="a\"b", error="invalid_token"`)
	f.Fuzz(func(t *testing.T, h string) {
		c, err := parseChallenge(h)
		if err == nil && c.Scheme == "" {
			t.Fatal("empty scheme accepted")
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	f.Add("bytes 0-99/1000")
	f.Add("bytes 5-5/*")
	f.Fuzz(func(t *testing.T, h string) {
		first, last, total, err := parseContentRange(h)
		if err == nil && (first < 0 || last < first || (total != -1 && total <= last)) {
			t.Fatalf("accepted inconsistent range %d-%d/%d", first, last, total)
		}
	})
}

// TestMirrors: reads go to a healthy mirror (with its headers); a mirror
// that keeps failing is skipped for the registry, and used again once its
// health check passes.
func TestMirrors(t *testing.T) {
	tr := newTestRegistry(t)
	data := randomData(50_000)
	id := tr.push(data)
	var healthy atomic.Bool
	healthy.Store(true)
	var mirrorGets, badHeader atomic.Int64
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		if r.Header.Get("X-Mirror") != "yes" && r.URL.Path != "/v2/" {
			badHeader.Add(1)
		}
		if strings.Contains(r.URL.Path, "/blobs/") {
			mirrorGets.Add(1)
		}
		tr.inner.ServeHTTP(w, r) // the mirror holds the same content
	}))
	defer mirror.Close()
	b := newReg(t, tr, map[string]any{"mirrors": []map[string]any{{"host": mirror.URL, "headers": map[string]string{"X-Mirror": "yes"},
		"health_check_interval": 1, "failure_limit": 2}}})
	readBack(t, b, id, data)
	if mirrorGets.Load() == 0 || badHeader.Load() != 0 {
		t.Fatalf("mirror gets %d, requests without the mirror header %d", mirrorGets.Load(), badHeader.Load())
	}
	originBefore := tr.gets.Load()
	healthy.Store(false)
	readBack(t, b, id, data) // falls back to the registry
	if tr.gets.Load() == originBefore {
		t.Fatal("registry not used while the mirror is down")
	}
	healthy.Store(true)
	time.Sleep(1100 * time.Millisecond)
	blob, _ := b.Open(context.Background(), id)
	blob.ReadAt(context.Background(), make([]byte, 10), 0) // triggers the health check
	time.Sleep(200 * time.Millisecond)
	before := mirrorGets.Load()
	readBack(t, b, id, data)
	if mirrorGets.Load() == before {
		t.Fatal("mirror not used again after its health check passed")
	}
}

// TestProxyFallback: with proxy.url set, blob requests go through the
// proxy; when the proxy is down they fall back to the registry.
func TestProxyFallback(t *testing.T) {
	tr := newTestRegistry(t)
	data := randomData(60_000)
	id := tr.push(data)
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		tr.serve(w, r)
	}))
	b := newReg(t, tr, map[string]any{"proxy": map[string]any{"url": proxy.URL, "fallback": true}})
	readBack(t, b, id, data)
	if proxied.Load() == 0 {
		t.Fatal("no request went through the proxy")
	}
	proxy.Close()
	before := tr.gets.Load()
	readBack(t, b, id, data)
	if tr.gets.Load() == before {
		t.Fatal("no fallback to the registry with the proxy down")
	}
}
