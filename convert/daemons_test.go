package convert

import (
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

// freePort returns a free TCP port on loopback.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startDockerRegistry runs Debian's docker-registry on loopback for the
// test and returns host:port; it skips when the binary is not installed.
func startDockerRegistry(t *testing.T) string {
	t.Helper()
	bin := testutil.RequireBinary(t, "docker-registry", "docker-registry")
	dir := t.TempDir()
	host := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "config.yml")
	doc := fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s}\n", filepath.Join(dir, "data"), host)
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 100 {
		if resp, err := http.Get("http://" + host + "/v2/"); err == nil {
			resp.Body.Close()
			return host
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("docker-registry did not answer on %s", host)
	return ""
}

// startDockerd runs a private dockerd (its own data root, no networking
// setup) for the test and returns its host URL; it skips without root or
// without dockerd and the docker CLI.
func startDockerd(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t, "runs dockerd")
	bin := testutil.RequireBinary(t, "dockerd", "docker.io")
	testutil.RequireBinary(t, "docker", "docker.io")
	dir, err := os.MkdirTemp("/tmp", "nydusify-dockerd")
	if err != nil {
		t.Fatal(err)
	}
	host := "unix://" + filepath.Join(dir, "docker.sock")
	cmd := exec.Command(bin, "--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"), "-H", host, "--iptables=false", "--bridge=none")
	logf, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		exec.Command("umount", "-l", filepath.Join(dir, "root")).Run() // dockerd's self bind mount, if left
		os.RemoveAll(dir)
	})
	for range 200 {
		if exec.Command("docker", "-H", host, "info").Run() == nil {
			return host
		}
		time.Sleep(100 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "dockerd.log"))
	t.Fatalf("dockerd did not start:\n%s", b)
	return ""
}
