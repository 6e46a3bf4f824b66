package snapshotterconverter

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/nydus-snapshotter/pkg/supervisor"
	"golang.org/x/sys/unix"
)

// daemonUnderTest is our nydusd as nydus-snapshotter runs it: a child
// with the snapshotter's argv, driven over its API socket.
type daemonUnderTest struct {
	cmd    *exec.Cmd
	sock   string
	log    *bytes.Buffer
	exited chan struct{}
}

func startFailoverDaemon(t *testing.T, bin, sock string, args []string) *daemonUnderTest {
	t.Helper()
	d := &daemonUnderTest{cmd: exec.Command(bin, args...), sock: sock, log: &bytes.Buffer{}, exited: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		<-d.exited
	})
	return d
}

func (d *daemonUnderTest) request(method, path string) (int, string, error) {
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", d.sock)
		}}}
	req, _ := http.NewRequest(method, "http://unix"+path, nil)
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// put is how the snapshotter's client judges a call: 200 or 204.
func (d *daemonUnderTest) put(path string) error {
	code, body, err := d.request(http.MethodPut, path)
	if err != nil {
		return err
	}
	if code != 200 && code != 204 {
		return fmt.Errorf("PUT %s: %d %s", path, code, body)
	}
	return nil
}

func (d *daemonUnderTest) waitState(t *testing.T, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if code, body, err := d.request(http.MethodGet, "/api/v1/daemon"); err == nil && code == 200 {
			var info struct {
				State string `json:"state"`
			}
			if json.Unmarshal([]byte(body), &info) == nil && info.State == want {
				return time.Since(start)
			}
		}
		select {
		case <-d.exited:
			t.Fatalf("nydusd exited waiting for %s:\n%s", want, d.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("nydusd not %s within %v:\n%s", want, limit, d.log.String())
	return 0
}

func (d *daemonUnderTest) kill(t *testing.T) {
	t.Helper()
	d.cmd.Process.Kill()
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("nydusd not reaped 10 s after SIGKILL")
	}
}

// TestFailoverWithSnapshotterSupervisor drives our nydusd with
// nydus-snapshotter v0.16.1's own pkg/supervisor, as its failover and
// live-upgrade paths do: FetchDaemonStates around sendfd once RUNNING;
// after a SIGKILL, SendStatesTimeout(10s) and a successor with the same
// argv (no --upgrade), takeover, start — twice; then a live upgrade (new
// API socket, --upgrade, takeover, READY, exit of the old daemon, start).
// Every file reads back right after each step, and the mount never goes.
func TestFailoverWithSnapshotterSupervisor(t *testing.T) {
	requireFUSE(t)
	imageBin, bin := binaries(t)
	src, blobs, wd := t.TempDir(), t.TempDir(), t.TempDir()
	files := map[string][]byte{}
	for i := range 6 {
		files[fmt.Sprintf("dir%d/file%d", i%2, i)] = bytes.Repeat([]byte(fmt.Sprintf("failover %d\n", i)), 20000+i*3000)
	}
	for name, data := range files {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, src, name, data)
	}
	boot := filepath.Join(wd, "image.boot")
	run(t, imageBin, "create", "-l", "warn", "-B", boot, "-D", blobs, src)
	cfg, _ := json.Marshal(map[string]any{"version": 2,
		"backend": map[string]any{"type": "localfs", "localfs": map[string]any{"dir": blobs}},
		"cache":   map[string]any{"type": "blobcache", "filecache": map[string]any{"work_dir": filepath.Join(wd, "cache")}},
		"rafs":    map[string]any{"mode": "direct", "validate": true, "enable_xattr": true}})
	cfgPath := writeFile(t, wd, "nydusd.json", cfg)
	mnt := filepath.Join(wd, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if isMountpoint(mnt) {
			abortFUSE(mnt)
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	ss, err := supervisor.NewSupervisorSet(filepath.Join(wd, "supervisor"))
	if err != nil {
		t.Fatal(err)
	}
	const id = "d0123"
	su := ss.NewSupervisor(id)
	defer ss.DestroySupervisor(id)
	argv := func(sock string, upgrade bool) []string {
		a := []string{"fuse"}
		if upgrade {
			a = append(a, "--upgrade")
		}
		return append(a, "--id", id, "--config", cfgPath, "--bootstrap", boot, "--mountpoint", mnt, "--apisock", sock,
			"--log-level", "info", "--supervisor", su.Sock(), "--failover-policy", "resend")
	}
	verify := func(what string) {
		t.Helper()
		for name, want := range files {
			got, err := os.ReadFile(filepath.Join(mnt, name))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: %s: %v", what, name, err)
			}
		}
	}
	sock := filepath.Join(wd, "api.sock")
	cur := startFailoverDaemon(t, bin, sock, argv(sock, false))
	cur.waitState(t, "RUNNING", mountTimeout)
	verify("first daemon")
	for i := range 2 {
		if err := su.FetchDaemonStates(func() error { return cur.put("/api/v1/daemon/fuse/sendfd") }); err != nil {
			t.Fatal(err)
		}
		cur.kill(t)
		if !isMountpoint(mnt) {
			t.Fatal("the mount went with the daemon")
		}
		if err := su.SendStatesTimeout(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		next := startFailoverDaemon(t, bin, sock, argv(sock, false))
		if d := next.waitState(t, "INIT", 5*time.Second); d > 1500*time.Millisecond {
			t.Errorf("failover %d: INIT after %v", i+1, d)
		}
		if err := next.put("/api/v1/daemon/fuse/takeover"); err != nil {
			t.Fatalf("failover %d: %v\n%s", i+1, err, next.log.String())
		}
		if err := next.put("/api/v1/daemon/start"); err != nil {
			t.Fatalf("failover %d: %v", i+1, err)
		}
		verify(fmt.Sprintf("after failover %d", i+1))
		cur = next
	}
	// Live upgrade, as DoDaemonUpgrade runs it.
	if err := su.FetchDaemonStates(func() error { return cur.put("/api/v1/daemon/fuse/sendfd") }); err != nil {
		t.Fatal(err)
	}
	sock2 := filepath.Join(wd, "api1.sock")
	if err := su.SendStatesTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	next := startFailoverDaemon(t, bin, sock2, argv(sock2, true))
	next.waitState(t, "INIT", 5*time.Second)
	if err := next.put("/api/v1/daemon/fuse/takeover"); err != nil {
		t.Fatal(err)
	}
	next.waitState(t, "READY", 5*time.Second)
	if err := cur.put("/api/v1/daemon/exit"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cur.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the old daemon did not exit")
	}
	if !isMountpoint(mnt) {
		t.Fatal("the old daemon's exit unmounted the session")
	}
	if err := next.put("/api/v1/daemon/start"); err != nil {
		t.Fatal(err)
	}
	verify("after the live upgrade")
	if out, err := exec.Command(bin, "--version").Output(); err != nil || !strings.Contains(string(out), "Git Commit:") {
		t.Fatalf("--version: %v %s", err, out)
	}
	next.cmd.Process.Signal(unix.SIGTERM)
	select {
	case <-next.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("nydusd did not stop on SIGTERM")
	}
	if isMountpoint(mnt) {
		t.Fatal("still mounted after SIGTERM")
	}
}
