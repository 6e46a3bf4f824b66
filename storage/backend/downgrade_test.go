package backend

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/testregistry"
)

// sniffListener hands the connections whose first byte is (or is not) a
// TLS handshake record to the listener of that kind.
type sniffListener struct {
	net.Listener
	tls, plain *chanListener
}

type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *chanListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func (s *sniffListener) run() {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			return
		}
		go func() {
			r := bufio.NewReader(c)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			first, err := r.Peek(1)
			c.SetReadDeadline(time.Time{})
			if err != nil {
				c.Close()
				return
			}
			to := s.plain
			if first[0] == 0x16 {
				to = s.tls
			}
			select {
			case to.ch <- peekedConn{Conn: c, r: r}:
			case <-to.done:
				c.Close()
			}
		}()
	}
}

// dualPort serves tlsH over TLS (a certificate the client does not know
// unless it is given ca) and plainH over plain HTTP on one loopback port:
// what a man in the middle, or a registry port that speaks both, offers.
func dualPort(t *testing.T, tlsH, plainH http.Handler) (addr, ca string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sniffListener{Listener: l,
		tls:   &chanListener{addr: l.Addr(), ch: make(chan net.Conn), done: make(chan struct{})},
		plain: &chanListener{addr: l.Addr(), ch: make(chan net.Conn), done: make(chan struct{})}}
	go s.run()
	ts := httptest.NewUnstartedServer(tlsH)
	ts.Listener = s.tls
	ts.StartTLS()
	ps := httptest.NewUnstartedServer(plainH)
	ps.Listener = s.plain
	ps.Start()
	t.Cleanup(func() { l.Close(); ts.Close(); ps.Close() })
	ca = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return l.Addr().String(), ca
}

// remoteDial dials every "*.remote.test" host on loopback at the port the
// address names, so a test registry can look like a remote one.
func remoteDial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(host, ".remote.test") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// seen records the requests a handler got and the Authorization headers
// they carried.
type seen struct {
	n     atomic.Int64
	mu    sync.Mutex
	authz []string
}

func (s *seen) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.n.Add(1)
		if a := r.Header.Get("Authorization"); a != "" {
			s.mu.Lock()
			s.authz = append(s.authz, a)
			s.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

func readErr(t *testing.T, b Backend, id string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	blob, err := b.Open(ctx, id)
	if err != nil {
		return err
	}
	_, err = blob.ReadAt(ctx, make([]byte, 100), 0)
	return err
}

// TestNoDowngradeOnCertificateError: with the scheme left to detection, a
// certificate the client does not trust fails the read; it is never
// retried over plain HTTP, where whoever holds the port could answer.
func TestNoDowngradeOnCertificateError(t *testing.T) {
	reg := testregistry.Start(t)
	data := randomData(10_000)
	id := reg.Push(t, "app", data)
	var plain seen
	addr, _ := dualPort(t, reg.Handler(), plain.wrap(reg.Handler()))
	err := readErr(t, newReg(t, addr, map[string]any{"scheme": "", "retry_limit": 0}), id)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("read over an untrusted certificate: %v", err)
	}
	if n := plain.n.Load(); n != 0 {
		t.Fatalf("after a certificate error, %d requests went over plain HTTP", n)
	}
}

// TestNoCredentialsOverPlainHTTP: a remote registry that answers plain
// HTTP (found by scheme detection) may be read anonymously, but neither
// credentials nor a static token are sent to it unless the configuration
// says scheme "http".
func TestNoCredentialsOverPlainHTTP(t *testing.T) {
	reg := testregistry.Start(t, testregistry.WithBasic("user", "secret"))
	data := randomData(10_000)
	id := reg.Push(t, "app", data)
	u, _ := url.Parse(reg.URL)
	var plain seen // in front of the registry's auth layer
	srv := httptest.NewServer(plain.wrap(httputil.NewSingleHostReverseProxy(u)))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	host := "registry.remote.test:" + port
	auth := base64.StdEncoding.EncodeToString([]byte("user:secret"))
	for _, extra := range []map[string]any{
		{"scheme": "", "auth": auth, "retry_limit": 0},
		{"scheme": "", "registry_token": "tok", "retry_limit": 0},
	} {
		err := readErr(t, newReg(t, host, extra, WithDialContext(remoteDial)), id)
		if err == nil || !strings.Contains(err.Error(), "plain HTTP refused") {
			t.Fatalf("%v: read with credentials over detected plain HTTP: %v", extra, err)
		}
	}
	if len(plain.authz) != 0 {
		t.Fatalf("credentials went over plain HTTP to a remote host: %q", plain.authz)
	}
	// Asked for explicitly, plain HTTP carries them.
	readBack(t, newReg(t, host, map[string]any{"scheme": "http", "auth": auth}, WithDialContext(remoteDial)), id, data)
	if len(plain.authz) == 0 {
		t.Fatal(`scheme "http" with credentials sent none`)
	}
}

// TestNoPlainHTTPRealm: a bearer challenge naming a plain-HTTP realm on a
// remote host is refused, so neither the credentials nor the token
// request leave over plain HTTP.
func TestNoPlainHTTPRealm(t *testing.T) {
	var realm seen
	tokenSrv := httptest.NewServer(realm.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"token":"t"}`))
	})))
	defer tokenSrv.Close()
	_, tport, _ := net.SplitHostPort(strings.TrimPrefix(tokenSrv.URL, "http://"))
	challenge := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://auth.remote.test:`+tport+`/token",service="r",scope="repository:app:pull"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	addr, ca := dualPort(t, challenge, challenge)
	auth := base64.StdEncoding.EncodeToString([]byte("user:secret"))
	err := readErr(t, newReg(t, addr, map[string]any{"scheme": "https", "ca_cert_files": []string{ca}, "auth": auth, "retry_limit": 0}, WithDialContext(remoteDial)), "sha256:"+strings.Repeat("a", 64))
	if err == nil || !strings.Contains(err.Error(), "plain HTTP: refused") {
		t.Fatalf("plain-HTTP realm: %v", err)
	}
	if n := realm.n.Load(); n != 0 {
		t.Fatalf("%d token requests went to a plain-HTTP realm (credentials %q)", n, realm.authz)
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for h, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.1.2.3": true, "localhost:5000": true, "LOCALHOST": true, "[::1]:5000": true, "::1": true, "[fe80::1]": false,
		"10.0.0.1:5000": false, "registry.local": false, "localhost.evil.example": false, "[::2]:80": false,
	} {
		if got := IsLoopbackHost(h); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v", h, got)
		}
	}
}
