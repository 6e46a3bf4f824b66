package backend

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func TestHTTPProxyTCPAndUnix(t *testing.T) {
	data := randomData(100_000)
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	var heads, gets atomic.Int64
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/blobs/"+id {
			http.NotFound(w, r)
			return
		}
		if r.Method == http.MethodHead {
			heads.Add(1)
		} else if r.Header.Get("Range") != "" {
			gets.Add(1)
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
		heads.Store(0)
		gets.Store(0)
		raw, _ := json.Marshal(map[string]any{"addr": addr, "path": "blobs"})
		b, err := New("http-proxy", raw)
		if err != nil {
			t.Fatal(err)
		}
		readBack(t, b, id, data)
		if heads.Load() != 1 || gets.Load() != 22 {
			t.Fatalf("%s: %d HEAD, %d range GET; want 1 and 22", addr, heads.Load(), gets.Load())
		}
		if m := b.Metrics(); m.BackendType != "http-proxy" || m.ReadCount != 22 {
			t.Fatalf("metrics %+v", m)
		}
		b.Close()
	}
	for _, bad := range []string{`{"addr":"relative.sock"}`, `{"addr":"ftp://x"}`, `{}`} {
		if _, err := New("http-proxy", json.RawMessage(bad)); err == nil {
			t.Fatalf("config %s accepted", bad)
		}
	}
}
