package backend

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gonydus/nydus/internal/testregistry"
)

// TestRegistryTLS: https with the server's certificate from
// ca_cert_files, the auto scheme settling on https, a clear failure for
// an unknown certificate, and skip_verify.
func TestRegistryTLS(t *testing.T) {
	reg := testregistry.Start(t)
	data := randomData(30_000)
	id := reg.Push(t, "app", data)
	var served atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		reg.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	readBack(t, newReg(t, host, map[string]any{"scheme": "https", "ca_cert_files": []string{ca}}), id, data)
	before := served.Load()
	readBack(t, newReg(t, host, map[string]any{"scheme": "", "ca_cert_files": []string{ca}}), id, data)
	if served.Load() == before {
		t.Fatal("auto scheme did not use https")
	}
	readBack(t, newReg(t, host, map[string]any{"scheme": "https", "skip_verify": true}), id, data)

	blob, _ := newReg(t, host, map[string]any{"scheme": "https", "retry_limit": 0}).Open(context.Background(), id)
	if _, err := blob.ReadAt(context.Background(), make([]byte, 10), 0); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unknown certificate: %v", err)
	}
	raw, _ := json.Marshal(map[string]any{"host": host, "repo": "app", "ca_cert_files": []string{filepath.Join(t.TempDir(), "missing.pem")}})
	if _, err := New("registry", raw); err == nil {
		t.Fatal("missing CA file accepted")
	}
}
