package testregistry

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartDebian runs Debian's docker-registry on a free 127.0.0.1 port with
// a temporary storage directory and no auth; it stops when the test ends.
// When the binary is missing it is installed with apt-get (as root); the
// test is skipped when that is impossible.
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
	if bin, err := exec.LookPath("docker-registry"); err == nil {
		return bin
	}
	if os.Geteuid() != 0 {
		t.Skip("docker-registry is not installed and installing it needs root (apt-get install docker-registry)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "--no-install-recommends", "docker-registry")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("docker-registry is not installed and apt-get install failed: %v\n%s", err, out)
	}
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry still missing after apt-get install")
	}
	return bin
}
