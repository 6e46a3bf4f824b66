package backend

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/faultproxy"
	"github.com/gonydus/nydus/internal/testregistry"
)

// redirectingRegistry answers blob GETs and HEADs of reg with a redirect
// to location and passes everything else to reg.
func redirectingRegistry(t *testing.T, reg *testregistry.InProcess, location string, redirects *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, faultproxy.BlobPath) && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			redirects.Add(1)
			http.Redirect(w, r, location, http.StatusTemporaryRedirect)
			return
		}
		reg.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// blobStorage serves data at any path, refusing registry credentials.
func blobStorage(t *testing.T, data []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("registry credentials sent to blob storage")
		}
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestRedirectToBlobStorage: the redirect is followed and cached; when the
// signed URL starts failing with 403 it is dropped and the registry asked
// again.
func TestRedirectToBlobStorage(t *testing.T) {
	data := randomData(200_000)
	storage := blobStorage(t, data)
	signed := faultproxy.New(t, storage.URL)
	reg := testregistry.Start(t)
	id := reg.Push(t, "app", data)
	var redirects atomic.Int64
	front := redirectingRegistry(t, reg, signed.URL+"/signed/blob?sig=1", &redirects)
	b := newReg(t, strings.TrimPrefix(front.URL, "http://"), map[string]any{"auth": basicAuth("u", "secret")})
	readBack(t, b, id, data)
	if redirects.Load() > 2 {
		t.Fatalf("%d registry round trips: the redirect was not cached", redirects.Load())
	}
	expired := signed.Add(faultproxy.Rule{Count: 1, Fault: faultproxy.Fault{Status: http.StatusForbidden}})
	before := redirects.Load()
	readBack(t, b, id, data)
	// One redirect for the new blob handle's HEAD, one for the re-asked
	// read; every other read uses the cached URL.
	if expired.Count() != 1 || redirects.Load() != before+2 {
		t.Fatalf("expired signed URL: %d 403s, %d new redirects", expired.Count(), redirects.Load()-before)
	}
}

// TestRedirectRewrite: blob_url_scheme and blob_redirected_host replace
// the scheme and host of the redirect target.
func TestRedirectRewrite(t *testing.T) {
	data := randomData(80_000)
	storage := blobStorage(t, data)
	reg := testregistry.Start(t)
	id := reg.Push(t, "app", data)
	var redirects atomic.Int64
	front := redirectingRegistry(t, reg, "https://blobs.invalid/signed/blob", &redirects)
	b := newReg(t, strings.TrimPrefix(front.URL, "http://"), map[string]any{
		"blob_url_scheme": "http", "blob_redirected_host": strings.TrimPrefix(storage.URL, "http://")})
	readBack(t, b, id, data)
	if redirects.Load() == 0 {
		t.Fatal("the registry did not redirect")
	}
}

// TestSizeWithoutHEAD: blob storage that refuses HEAD (a URL signed for
// GET) still gives the size, by a one-byte range GET.
func TestSizeWithoutHEAD(t *testing.T) {
	data := randomData(70_000)
	storage := blobStorage(t, data)
	signed := faultproxy.New(t, storage.URL)
	heads := signed.Add(faultproxy.Rule{Method: http.MethodHead, Fault: faultproxy.Fault{Status: http.StatusForbidden}})
	reg := testregistry.Start(t)
	id := reg.Push(t, "app", data)
	var redirects atomic.Int64
	front := redirectingRegistry(t, reg, signed.URL+"/signed/blob", &redirects)
	b := newReg(t, strings.TrimPrefix(front.URL, "http://"), nil)
	readBack(t, b, id, data)
	if heads.Count() == 0 {
		t.Fatal("HEAD never reached the storage")
	}
}
