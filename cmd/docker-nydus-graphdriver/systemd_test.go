package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSocketActivationAndReadiness: started by systemd with a .socket
// unit (--socket fd://, LISTEN_FDS/LISTEN_PID) and Type=notify, the
// plugin serves on the socket it was given and says READY=1 once it does,
// so docker.service ordered after it starts only then.
func TestSocketActivationAndReadiness(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "docker-nydus-graphdriver")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	notifyPath := filepath.Join(dir, "notify")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	sockPath := filepath.Join(dir, "nydus.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sockPath, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	lf, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // the child holds the socket through lf
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// systemd sets LISTEN_PID to the service's pid: the shell exports its
	// own before it execs the plugin.
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin,
		"--socket", "fd://", "--state-file", filepath.Join(dir, "state.json"))
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "NOTIFY_SOCKET="+notifyPath)
	cmd.ExtraFiles = []*os.File{lf} // fd 3
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	notify.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 256)
	n, err := notify.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
		t.Fatalf("readiness: %q, %v\n%s", buf[:n], err, stderr.String())
	}
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sockPath)
		}}}
	resp, err := c.Post("http://plugin/Plugin.Activate", "application/json", nil)
	if err != nil {
		t.Fatalf("activate over the passed socket: %v\n%s", err, stderr.String())
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "GraphDriver") {
		t.Fatalf("Plugin.Activate answered %s", b)
	}
}
