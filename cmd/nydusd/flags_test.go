package main

import (
	"bytes"
	"context"
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

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
)

// testBinaries builds nydus-image and nydusd once per test.
func testBinaries(t *testing.T) (image, nydusd string) {
	t.Helper()
	dir := t.TempDir()
	for _, c := range []string{"nydus-image", "nydusd"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, c), "../"+c).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v: %s", c, err, out)
		}
	}
	return filepath.Join(dir, "nydus-image"), filepath.Join(dir, "nydusd")
}

// mounted reports whether dir is a mount point (its device differs from
// its parent's).
func mounted(dir string) bool {
	var st, pst unix.Stat_t
	return unix.Stat(dir, &st) == nil && unix.Stat(filepath.Dir(dir), &pst) == nil && st.Dev != pst.Dev
}

// apiState asks the daemon's API socket for its state.
func apiState(sock string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := c.Get("http://unix/api/v1/daemon")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestUpstreamSpellings starts nydusd with upstream's spellings of its
// options (the fuse subcommand and the bare form, long and short names,
// the --thread-num alias, global options before the subcommand, a v1
// configuration through -C, a virtual mountpoint) and checks each really
// serves the image: the file reads back, the API socket answers RUNNING.
// Refused subcommands and options fail with their reason.
func TestUpstreamSpellings(t *testing.T) {
	testutil.RequireFUSE(t)
	image, nydusd := testBinaries(t)
	src, blobs := t.TempDir(), t.TempDir()
	want := bytes.Repeat([]byte("upstream spelling\n"), 10_000)
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "etc/data"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	boot := filepath.Join(t.TempDir(), "image.boot")
	if out, err := exec.Command(image, "create", "-l", "warn", "-B", boot, "-D", blobs, src).CombinedOutput(); err != nil {
		t.Fatalf("create: %v: %s", err, out)
	}
	cfg := filepath.Join(t.TempDir(), "nydusd.json")
	doc := fmt.Sprintf(`{"device":{"backend":{"type":"localfs","config":{"dir":%q}},"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct","enable_xattr":true}`, blobs, t.TempDir())
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		args []string // MNT and SOCK are replaced
		sub  string   // where the image appears below the mountpoint
	}{
		"fuse-long":         {args: []string{"fuse", "--apisock", "SOCK", "--mountpoint", "MNT", "--bootstrap", boot, "--localfs-dir", blobs, "--fuse-threads", "2", "--log-level", "warn"}},
		"bare-short":        {args: []string{"-A", "SOCK", "-M", "MNT", "-B", boot, "-D", blobs, "-l", "warn", "--thread-num", "2"}},
		"globals-before":    {args: []string{"--log-level", "warn", "--apisock", "SOCK", "-C", cfg, "fuse", "-M", "MNT", "-B", boot, "--failover-policy", "flush", "--rlimit-nofile", "0"}},
		"virtual-mount":     {args: []string{"fuse", "-A", "SOCK", "-M", "MNT", "--config", cfg, "-B", boot, "-m", "/sub", "-l", "warn"}, sub: "sub"},
		"equals-and-writer": {args: []string{"--apisock=SOCK", "--mountpoint=MNT", "--bootstrap=" + boot, "--localfs-dir=" + blobs, "--log-file=" + filepath.Join(t.TempDir(), "nydusd"), "--log-rotation-size", "10", "--readonly"}},
	} {
		t.Run(name, func(t *testing.T) {
			mnt := t.TempDir()
			sock := filepath.Join(t.TempDir(), "api.sock")
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = strings.ReplaceAll(strings.ReplaceAll(a, "MNT", mnt), "SOCK", sock)
			}
			cmd := exec.Command(nydusd, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			defer func() {
				cmd.Process.Signal(unix.SIGTERM)
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					cmd.Process.Kill()
					unix.Unmount(mnt, unix.MNT_DETACH)
					t.Error("nydusd did not stop within 10 s of SIGTERM")
				}
				if mounted(mnt) {
					unix.Unmount(mnt, unix.MNT_DETACH)
					t.Error("still mounted after nydusd stopped")
				}
			}()
			deadline := time.Now().Add(10 * time.Second)
			for !mounted(mnt) {
				select {
				case err := <-done:
					done <- err
					t.Fatalf("nydusd %q exited (%v) before mounting: %s", args, err, stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("nydusd %q did not mount within 10 s: %s", args, stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Clients wait for RUNNING (pseudo-mounts are attached after
			// the FUSE mount goes live, so a lookup before it misses them).
			if strings.Contains(strings.Join(args, " "), sock) {
				for {
					state, err := apiState(sock)
					if err == nil && strings.Contains(state, `"RUNNING"`) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("API state %q, %v", state, err)
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			got, err := os.ReadFile(filepath.Join(mnt, tc.sub, "etc/data"))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read through the mount: %d bytes, %v: %s", len(got), err, stderr.String())
			}
		})
	}
	for args, reason := range map[string]string{
		"singleton --fscache /tmp/x --fscache-threads 2": "fscache",
		"--apisock /tmp/x.sock virtiofs --sock /tmp/v":   "virtio-fs",
		"nbd /dev/nbd0 --threads 2 -B x -D y":            "NBD",
		"uffd --sock /tmp/u":                             "userfaultfd",
		"fuse -M /tmp -s /srv":                           "passthroughfs",
		"fuse -M /tmp --dedup-db /tmp/db":                "deduplication",
		"fuse -M /tmp --no-such-option":                  "no-such-option",
	} {
		out, err := exec.Command(nydusd, strings.Fields(args)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), reason) {
			t.Errorf("nydusd %s: %v: %s (want a refusal naming %q)", args, err, out, reason)
		}
	}
	if out, err := exec.Command(nydusd, "-V").CombinedOutput(); err != nil || !strings.Contains(string(out), "Git Commit:") {
		t.Errorf("nydusd -V: %v: %s", err, out)
	}
}
