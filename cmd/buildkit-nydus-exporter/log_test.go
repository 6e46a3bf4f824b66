package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/internal/testutil"
)

// mainEnv makes the test binary run the daemon's main (TestMain).
const mainEnv = "BUILDKIT_NYDUS_EXPORTER_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		os.Args = append(os.Args[:1], os.Args[2:]...) // drop the "--" separator
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestJSONLogOneStream starts the daemon with --log-format json --debug on
// a fresh state directory, stops it once it serves, and checks that every
// line of stderr is one JSON record, including the records BuildKit logs
// through logrus while the worker is set up (its network namespace pool
// cleanup) — no logrus text format mixed in.
func TestJSONLogOneStream(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the OCI worker's overlayfs snapshotter needs root")
	}
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "--", "--config", filepath.Join(dir, "missing.toml"), "--root", filepath.Join(dir, "root"),
		"--addr", "unix://"+filepath.Join(dir, "buildkitd.sock"), "--debug", "--log-format", "json")
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var got []string
	deadline := time.After(2 * time.Minute)
	stopped := false
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				done = true
				break
			}
			got = append(got, l)
			if strings.Contains(l, "serving the BuildKit API") && !stopped {
				stopped = true
				cmd.Process.Signal(syscall.SIGTERM)
			}
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("the daemon did not serve and stop within 2 minutes; stderr so far:\n%s", strings.Join(got, "\n"))
		}
	}
	io.Copy(io.Discard, stderr)
	cmd.Wait()
	if !stopped {
		t.Fatalf("the daemon never logged that it serves:\n%s", strings.Join(got, "\n"))
	}
	var fromLogrus, fromSlog int
	for i, l := range got {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Errorf("stderr line %d is not JSON (%v): %q", i+1, err, l)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("line %d lacks %q: %q", i+1, k, l)
			}
		}
		msg, _ := rec["msg"].(string)
		switch {
		// BuildKit's network namespace pool (util/network), through logrus.
		case strings.Contains(msg, "for cleanup") || strings.Contains(msg, "network namespace pool"):
			fromLogrus++
		case msg == "worker ready" || msg == "serving the BuildKit API":
			fromSlog++
		}
	}
	if fromLogrus == 0 || fromSlog < 2 {
		t.Errorf("%d BuildKit (logrus) and %d own (slog) records, want both:\n%s", fromLogrus, fromSlog, strings.Join(got, "\n"))
	}
}

// TestLogReopenOnHangup: with --log-file, logrotate's rename and SIGHUP
// make the daemon write its own and BuildKit's records on into a new file.
func TestLogReopenOnHangup(t *testing.T) {
	testutil.RequireRoot(t, "the OCI worker's overlayfs snapshotter needs root")
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "log", "buildkitd.log")
	cmd := exec.Command(self, "--", "--config", filepath.Join(dir, "missing.toml"), "--root", filepath.Join(dir, "root"),
		"--addr", "unix://"+filepath.Join(dir, "buildkitd.sock"), "--log-file", logPath)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckReopenOnHangup(t, cmd, testutil.Hangup{Log: logPath, Ready: `msg="serving the BuildKit API"`,
		Reopened: cli.ReopenedMessage, Stopped: "msg=stopping"})
}
