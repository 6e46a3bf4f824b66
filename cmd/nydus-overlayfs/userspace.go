package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/cmd/nydus-overlayfs/internal/mountopt"
	"github.com/gonydus/nydus/daemon/spawn"
)

// mountUserspace is mode 2: nydusd serves the image of the extraoption
// (bootstrap and nydusd configuration, as nydus-snapshotter passes them)
// at the target, with its writable overlay on upperdir/workdir. nydusd
// keeps running in its own session after the helper exits; unmounting the
// target ends it.
func mountUserspace(m *mountopt.Mount) error {
	e := m.Extra
	if e == nil {
		return errors.New("nydus-overlayfs: the userspace overlay needs extraoption= (the image's bootstrap and nydusd config)")
	}
	if e.Source == "" || e.Config == "" || e.Snapshotdir == "" {
		return errors.New("nydus-overlayfs: extraoption lacks source, config or snapshotdir")
	}
	if e.Version != "" && e.Version != "v6" {
		return fmt.Errorf("nydus-overlayfs: extraoption fs_version %q: only RAFS v6 is supported", e.Version)
	}
	if lower := m.Value("lowerdir"); strings.Contains(lower, ":") {
		return fmt.Errorf("nydus-overlayfs: the userspace overlay has one lower layer, the image; lowerdir=%s lists several", lower)
	}
	upper, work := m.Value("upperdir"), m.Value("workdir")
	writable := upper != "" && m.Flags&unix.MS_RDONLY == 0
	var cfg map[string]any
	if err := json.Unmarshal([]byte(e.Config), &cfg); err != nil {
		return fmt.Errorf("nydus-overlayfs: extraoption config is not JSON: %w", err)
	}
	if upper != "" {
		cfg["overlay"] = map[string]string{"upper_dir": upper, "work_dir": work}
	}
	dir := filepath.Join(e.Snapshotdir, "nydus-overlayfs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("nydus-overlayfs: %w", err)
	}
	doc, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "nydusd.json") // may hold registry credentials: 0600
	if err := os.WriteFile(cfgPath, doc, 0o600); err != nil {
		return fmt.Errorf("nydus-overlayfs: %w", err)
	}
	nydusd, err := findNydusd()
	if err != nil {
		return err
	}
	args := []string{"--config", cfgPath, "--bootstrap", e.Source, "--mountpoint", m.Target,
		"--apisock", filepath.Join(dir, "api.sock"), "--log-level", "info",
		// nydusd rotates its log at 10 MB, keeping 5 rotated files.
		"--log-file", filepath.Join(dir, "nydusd.log"), "--log-rotation-size", "10"}
	if writable {
		args = append(args, "--writable")
	}
	pidFile := filepath.Join(dir, "nydusd.pid")
	if err := waitPrevious(pidFile, 10*time.Second); err != nil {
		return err
	}
	n := spawn.Nydusd{Binary: nydusd, Args: args, Mountpoint: m.Target, LogFile: filepath.Join(dir, "nydusd.log")}
	if self, err := os.Executable(); err == nil {
		n.Supervise = &spawn.Supervision{Command: []string{self, keeperCmd}, Dir: runDir, ID: keeperID(m.Target)}
	}
	pid, err := spawn.Start(n)
	if err != nil {
		return fmt.Errorf("nydus-overlayfs: %w", err)
	}
	_ = os.WriteFile(pidFile, []byte(strconv.Itoa(pid)), 0o600)
	return nil
}

// keeperCmd is the subcommand the helper runs itself as to supervise the
// nydusd of a mode 2 mount (spawn.KeeperMain): a nydusd that dies is
// replaced by takeover, and `nydus-overlayfs upgrade` reaches it.
const keeperCmd = "supervise-nydusd"

// runDir holds the keepers' sockets: short paths, whatever the length of
// the snapshot directory.
const runDir = "/run/nydus-overlayfs"

// keeperID names a mount's keeper sockets after its target.
func keeperID(target string) string {
	sum := sha256.Sum256([]byte(target))
	return hex.EncodeToString(sum[:8])
}

// upgrade is `nydus-overlayfs upgrade --nydusd PATH`: the nydusd of every
// supervised mode 2 mount moves to the binary PATH without unmounting.
func upgrade(args []string) int {
	if len(args) != 2 || args[0] != "--nydusd" || !filepath.IsAbs(args[1]) {
		fmt.Fprintln(os.Stderr, "usage: nydus-overlayfs upgrade --nydusd /ABSOLUTE/PATH/nydusd")
		return exitUsage
	}
	err := spawn.UpgradeAll(context.Background(), runDir, args[1], func(sock string, st spawn.Status, err error) {
		if err != nil {
			fmt.Printf("%s: FAILED: %v\n", sock, err)
			return
		}
		fmt.Printf("%s: nydusd %s (pid %d)\n", st.Mountpoint, st.Nydusd, st.PID)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "nydus-overlayfs upgrade:", err)
		return exitFailure
	}
	return 0
}

// waitPrevious waits (up to timeout) until the nydusd an earlier mount of
// this snapshot started has exited: containerd mounts a snapshot, unmounts
// it and mounts it again at once (a temporary mount, then the rootfs), and
// the earlier nydusd holds the upper directory until it has shut down.
func waitPrevious(pidFile string, timeout time.Duration) error {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return nil
	}
	own := filepath.Join(filepath.Dir(pidFile), "api.sock")
	for deadline := time.Now().Add(timeout); ; {
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(cmd), own) {
			return nil // gone (or the pid now belongs to another process)
		}
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if f := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:])); len(f) > 0 && f[0] == "Z" {
				return nil // exited, not yet reaped
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nydus-overlayfs: the nydusd (pid %d) of an earlier mount of this snapshot still runs", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findNydusd looks beside this helper first, then on the default PATH
// (mount(8) runs helpers without one).
func findNydusd() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), "nydusd")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if st, err := os.Stat(filepath.Join(d, "nydusd")); err == nil && st.Mode().IsRegular() {
			return filepath.Join(d, "nydusd"), nil
		}
	}
	if p, err := exec.LookPath("nydusd"); err == nil {
		return p, nil
	}
	return "", errors.New("nydus-overlayfs: nydusd not found beside the helper or on the default PATH")
}
