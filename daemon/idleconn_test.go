package daemon

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestIdleAPIConnectionKept: nydus-snapshotter watches a daemon through
// an API connection that never sends a request and takes its closing for
// the daemon's death, so the API server never closes an idle connection
// (no read or header timeout). GONYDUS_IDLE_CONN sets how long the test
// holds it (default 20 s; the snapshotter holds it for the daemon's
// life).
func TestIdleAPIConnectionKept(t *testing.T) {
	hold := 20 * time.Second
	if v := os.Getenv("GONYDUS_IDLE_CONN"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		hold = d
	}
	d := New(Options{})
	api := NewAPI(d, nil, nil)
	sock := filepath.Join(t.TempDir(), "api.sock")
	if err := api.Serve(sock); err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The server's answer to anything would be an HTTP response; a
	// closed connection reads EOF. Neither may come while idle.
	c.SetReadDeadline(time.Now().Add(hold))
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("idle connection after %v: read %d bytes, %v (want no data and our own deadline)", hold, n, err)
	}
	// Still alive: a request on it is answered.
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET /api/v1/daemon HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != nil || string(buf[:12]) != "HTTP/1.1 200" {
		t.Fatalf("request after %v idle: %q %v", hold, buf[:n], err)
	}
}
