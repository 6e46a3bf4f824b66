package testregistry

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/testutil"
)

// StartDebian runs Debian's docker-registry on a free 127.0.0.1 port with
// a temporary storage directory and no auth; it stops when the test ends.
// When the binary is missing the test is skipped (failed with
// GONYDUS_STRICT=1) saying so: scripts/deps.sh, which make test runs first,
// installs it as root.
func StartDebian(t testing.TB) *Registry {
	t.Helper()
	bin := debianBinary(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n",
		filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	r := &Registry{URL: "http://" + addr, Host: addr}
	for range 200 {
		if resp, err := http.Get(r.URL + "/v2/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("docker-registry did not come up on %s: %s", addr, out.String())
	return nil
}

func debianBinary(t testing.TB) string {
	t.Helper()
	return testutil.RequireBinary(t, "docker-registry", "docker-registry")
}
