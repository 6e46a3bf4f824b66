package backend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
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

// snapshotterProxy answers like nydus-snapshotter's content-store proxy:
// HEAD gives the length; a range GET is answered with status 200 and just
// the range's bytes, without Content-Range (its headers are set after the
// body). ignoreRange sends the whole blob instead, as a server ignoring
// Range does.
func snapshotterProxy(data []byte, ignoreRange bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			return
		}
		var first, last int
		if _, err := fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last); err != nil || ignoreRange {
			first, last = 0, len(data)-1
		}
		w.Write(data[first : last+1])
	}
}

func TestHTTPProxySnapshotterStyle(t *testing.T) {
	data := randomData(300_000)
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	for _, ignore := range []bool{false, true} {
		sock := filepath.Join(t.TempDir(), "cs.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: snapshotterProxy(data, ignore)}
		go srv.Serve(l)
		raw, _ := json.Marshal(map[string]any{"addr": sock})
		b, err := New("http-proxy", raw)
		if err != nil {
			t.Fatal(err)
		}
		if !ignore {
			// A short read at 0 is not the whole blob: reads past it work.
			blob, err := b.Open(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			for _, off := range []int64{0, 24, 299_990} {
				buf := make([]byte, 24)
				n, err := blob.ReadAt(context.Background(), buf, off)
				if want := min(24, int64(len(data))-off); int64(n) != want || !bytes.Equal(buf[:n], data[off:off+want]) {
					t.Fatalf("read at %d: %d, %v", off, n, err)
				}
			}
			readBack(t, b, id, data) // small (Content-Length) and large (chunked) bodies
		} else {
			blob, err := b.Open(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			if _, err := blob.ReadAt(context.Background(), buf, 5000); err == nil || !strings.Contains(err.Error(), "ignored Range") {
				t.Fatalf("a whole blob for a range read: %v", err)
			}
		}
		b.Close()
		srv.Close()
	}
}
