package backend

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// thief records what reaches a host that should never see credentials.
type thief struct {
	mu   sync.Mutex
	got  []string // Authorization headers and request bodies holding the password
	hits int
}

func (th *thief) server(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		th.mu.Lock()
		th.hits++
		if a := r.Header.Get("Authorization"); a != "" {
			th.got = append(th.got, "Authorization: "+a)
		}
		if strings.Contains(string(body), "s3cret") || strings.Contains(r.URL.RawQuery, "s3cret") {
			th.got = append(th.got, "body: "+string(body))
		}
		th.mu.Unlock()
		w.Write([]byte(`{"token":"stolen"}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// challenging answers every request with a bearer challenge naming realm.
func challenging(t *testing.T, realm string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="reg",scope="repository:app:pull"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	return srv
}

const someBlob = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// TestRealmRedirectKeepsCredentials: a token realm that redirects the token
// request (307, which re-sends a POST's body, or 302) to another host must
// not hand that host the registry credentials, neither as Authorization
// nor in the OAuth2 form.
func TestRealmRedirectKeepsCredentials(t *testing.T) {
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect, http.StatusFound} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			var th thief
			other := th.server(t)
			realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/token?"+r.URL.RawQuery, status)
			}))
			defer realm.Close()
			// The realm is on 127.0.0.1, the other host on localhost: two hosts.
			other.URL = strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
			reg := challenging(t, realm.URL+"/token")
			_ = readErr(t, newReg(t, strings.TrimPrefix(reg.URL, "http://"), map[string]any{"auth": basicAuth("user", "s3cret"), "retry_limit": 0}), someBlob)
			th.mu.Lock()
			defer th.mu.Unlock()
			if len(th.got) > 0 {
				t.Fatalf("a realm redirect handed another host the registry credentials: %q", th.got)
			}
			t.Logf("the other host got %d requests, none with credentials", th.hits)
		})
	}
}

// TestRegistryRedirectDropsBearer: a registry redirecting a blob read to
// another host (blob storage) does not send it the bearer token it got
// from its realm.
func TestRegistryRedirectDropsBearer(t *testing.T) {
	var th thief
	other := th.server(t)
	other.URL = strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	var realmURL string
	realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"token":"registry-token","expires_in":600}`))
	}))
	defer realm.Close()
	realmURL = realm.URL + "/token"
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer registry-token" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realmURL+`",service="reg"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, other.URL+"/blob", http.StatusTemporaryRedirect)
	}))
	defer reg.Close()
	_ = readErr(t, newReg(t, strings.TrimPrefix(reg.URL, "http://"), map[string]any{"auth": basicAuth("user", "s3cret"), "retry_limit": 0}), someBlob)
	th.mu.Lock()
	defer th.mu.Unlock()
	if th.hits == 0 {
		t.Fatal("the redirect was not followed")
	}
	if len(th.got) > 0 {
		t.Fatalf("blob storage on another host got credentials: %q", th.got)
	}
}

// TestHostileRealmAnswers: a realm answering with an endless JSON string,
// invalid JSON, JSON without a token or a deeply nested document fails the
// read promptly, reading at most about 1 MiB of it.
func TestHostileRealmAnswers(t *testing.T) {
	bodies := map[string]func(w io.Writer){
		"endless token": func(w io.Writer) {
			io.WriteString(w, `{"token":"`)
			chunk := []byte(strings.Repeat("A", 64<<10))
			for range 16 << 10 { // 1 GiB if the client kept reading
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		},
		"invalid":  func(w io.Writer) { io.WriteString(w, `{"token":`) },
		"no token": func(w io.Writer) { io.WriteString(w, `{"tok":"x","expires_in":-5}`) },
		"nested":   func(w io.Writer) { io.WriteString(w, strings.Repeat("[", 1<<20)) },
		"number":   func(w io.Writer) { io.WriteString(w, `{"token":7}`) },
	}
	for name, body := range bodies {
		t.Run(name, func(t *testing.T) {
			realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { body(w) }))
			defer realm.Close()
			reg := challenging(t, realm.URL+"/token")
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			err := readErr(t, newReg(t, strings.TrimPrefix(reg.URL, "http://"), map[string]any{"retry_limit": 0}), someBlob)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatal("read succeeded with a hostile realm")
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
				t.Fatalf("the client allocated %d MiB on a hostile token answer", grew>>20)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %v", d)
			}
			t.Logf("%v in %v", err, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestRealmRedirectToPlainHTTP: an HTTPS realm of a remote registry that
// redirects the token request to plain HTTP on the same host name (another
// port) must not be followed: the client would send the Basic credentials
// there in clear (http.Client keeps Authorization for the same host name).
func TestRealmRedirectToPlainHTTP(t *testing.T) {
	for _, status := range []int{http.StatusFound, http.StatusTemporaryRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			var th thief
			plain := th.server(t)
			_, pport, _ := net.SplitHostPort(strings.TrimPrefix(plain.URL, "http://"))
			realm := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://auth.remote.test:"+pport+"/token?"+r.URL.RawQuery, status)
			}))
			defer realm.Close()
			_, rport, _ := net.SplitHostPort(strings.TrimPrefix(realm.URL, "https://"))
			reg := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="https://auth.remote.test:`+rport+`/token",service="reg"`)
				w.WriteHeader(http.StatusUnauthorized)
			}))
			defer reg.Close()
			_, gport, _ := net.SplitHostPort(strings.TrimPrefix(reg.URL, "https://"))
			err := readErr(t, newReg(t, "registry.remote.test:"+gport, map[string]any{"scheme": "https", "skip_verify": true,
				"auth": basicAuth("user", "s3cret"), "retry_limit": 0}, WithDialContext(remoteDial)), someBlob)
			th.mu.Lock()
			defer th.mu.Unlock()
			if len(th.got) > 0 || th.hits > 0 {
				t.Fatalf("the realm's redirect to plain HTTP was followed (%d requests), credentials sent: %q", th.hits, th.got)
			}
			t.Logf("read: %v", err)
		})
	}
}
