package backend

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/testregistry"
)

// TestMirrors: reads go to a healthy mirror (with its headers); a mirror
// that keeps failing is skipped for the registry, and used again once its
// health check passes.
func TestMirrors(t *testing.T) {
	reg := testregistry.Start(t)
	data := randomData(50_000)
	id := reg.Push(t, "app", data)
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
		reg.Handler().ServeHTTP(w, r) // the mirror holds the same content
	}))
	defer mirror.Close()
	b := newReg(t, reg.Host, map[string]any{"mirrors": []map[string]any{{"host": mirror.URL, "headers": map[string]string{"X-Mirror": "yes"},
		"health_check_interval": 1, "failure_limit": 2}}})
	readBack(t, b, id, data)
	if mirrorGets.Load() == 0 || badHeader.Load() != 0 || reg.BlobReads() != 0 {
		t.Fatalf("mirror gets %d, requests without the mirror header %d, registry reads %d", mirrorGets.Load(), badHeader.Load(), reg.BlobReads())
	}
	healthy.Store(false)
	readBack(t, b, id, data) // falls back to the registry
	if reg.BlobReads() == 0 {
		t.Fatal("registry not used while the mirror is down")
	}
	healthy.Store(true)
	time.Sleep(1100 * time.Millisecond)
	blob, _ := b.Open(context.Background(), id)
	eventually(t, "mirror used again after its health check passed", func() bool {
		before := mirrorGets.Load()
		blob.ReadAt(context.Background(), make([]byte, 10), 0) // triggers the health check
		return mirrorGets.Load() > before
	})
	readBack(t, b, id, data)
}

// eventually polls cond for up to 5 s (background health checks).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("not within 5 s: %s", what)
}

// TestProxyFallback: with proxy.url set, blob requests go through the
// proxy; when the proxy is down they fall back to the registry.
func TestProxyFallback(t *testing.T) {
	reg := testregistry.Start(t)
	data := randomData(60_000)
	id := reg.Push(t, "app", data)
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		reg.Handler().ServeHTTP(w, r)
	}))
	b := newReg(t, reg.Host, map[string]any{"proxy": map[string]any{"url": proxy.URL, "fallback": true}})
	readBack(t, b, id, data)
	if proxied.Load() == 0 || reg.BlobReads() != 0 {
		t.Fatalf("%d requests through the proxy, %d straight to the registry", proxied.Load(), reg.BlobReads())
	}
	proxy.Close()
	readBack(t, b, id, data)
	if reg.BlobReads() == 0 {
		t.Fatal("no fallback to the registry with the proxy down")
	}
	// Without fallback, a dead proxy is an error.
	nb := newReg(t, reg.Host, map[string]any{"retry_limit": 0, "proxy": map[string]any{"url": proxy.URL, "fallback": false}})
	blob, _ := nb.Open(context.Background(), id)
	if _, err := blob.ReadAt(context.Background(), make([]byte, 10), 0); err == nil {
		t.Fatal("read through a dead proxy without fallback succeeded")
	}
}

// TestProxyHealth: a proxy answering 5xx is bypassed for the registry and
// left alone until check_interval has passed and its ping_url answers.
func TestProxyHealth(t *testing.T) {
	reg := testregistry.Start(t)
	data := randomData(40_000)
	id := reg.Push(t, "app", data)
	var healthy atomic.Bool
	var proxied, pings atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			pings.Add(1)
		} else {
			proxied.Add(1)
		}
		if !healthy.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		reg.Handler().ServeHTTP(w, r)
	}))
	defer proxy.Close()
	b := newReg(t, reg.Host, map[string]any{"proxy": map[string]any{"url": proxy.URL, "ping_url": proxy.URL + "/ping", "fallback": true, "check_interval": 1}})
	readBack(t, b, id, data)
	if proxied.Load() != 1 || reg.BlobReads() != 22 {
		t.Fatalf("sick proxy: %d requests to it, %d registry reads; want 1 and all 22", proxied.Load(), reg.BlobReads())
	}
	healthy.Store(true)
	time.Sleep(1100 * time.Millisecond)
	blob, _ := b.Open(context.Background(), id)
	eventually(t, "proxy used again after its health check passed", func() bool {
		before := proxied.Load()
		blob.ReadAt(context.Background(), make([]byte, 10), 0) // starts the health check
		return proxied.Load() > before
	})
	if pings.Load() == 0 {
		t.Fatal("no health check of the proxy")
	}
	before := reg.BlobReads()
	readBack(t, b, id, data)
	if proxied.Load() < 20 || reg.BlobReads() != before {
		t.Fatalf("healthy proxy not used again: %d requests to it, %d straight to the registry", proxied.Load(), reg.BlobReads()-before)
	}
}
