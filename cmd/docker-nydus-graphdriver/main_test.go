package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/internal/testutil"
)

// buildPlugin builds the plugin binary into a temporary directory.
func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "docker-nydus-graphdriver")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// TestHelp: --help and -h print every option in the "--long, -s" shape
// the other binaries use, on stdout, and exit 0; an unknown option or a
// stray argument exits 2 pointing at --help.
func TestHelp(t *testing.T) {
	bin := buildPlugin(t)
	for _, arg := range []string{"--help", "-h"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		for _, want := range []string{"Usage: docker-nydus-graphdriver [OPTIONS]", "-s, --socket", "--container-layer", "-C, --nydusd-config",
			"-L, --log-file", "--log-rotation-size", "-l, --log-level", "-V, --version", "[default: /run/docker/plugins/nydus.sock]"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s output lacks %q:\n%s", arg, want, out)
			}
		}
	}
	for _, args := range [][]string{{"--no-such-option"}, {"stray"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--help") {
			t.Errorf("%q: %v: %s", args, err, out)
		}
	}
}

// TestLogReopenOnHangup: with --log-file, logrotate's rename and SIGHUP
// make the plugin write on into a new file, still serving.
func TestLogReopenOnHangup(t *testing.T) {
	bin := buildPlugin(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "logs", "plugin.log") // directory created
	cmd := exec.Command(bin, "--socket", filepath.Join(dir, "nydus.sock"), "--state-file", filepath.Join(dir, "state.json"),
		"--log-file", logPath, "--log-format", "json")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.CheckReopenOnHangup(t, cmd, testutil.Hangup{Log: logPath, Ready: `"msg":"serving"`, Reopened: cli.ReopenedMessage, Stopped: `"msg":"stopping"`})
}
