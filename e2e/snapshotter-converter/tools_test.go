package snapshotterconverter

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds for every external step.
const (
	stepTimeout  = 2 * time.Minute
	mountTimeout = 15 * time.Second
	readTimeout  = time.Minute
)

var (
	binOnce       sync.Once
	nydusImageBin string
	nydusdBin     string
	binErr        error
)

// binaries returns our nydus-image and nydusd: $NYDUS_IMAGE and $NYDUSD
// when set, else built once from the repository around this module.
func binaries(t *testing.T) (nydusImage, nydusd string) {
	t.Helper()
	binOnce.Do(func() {
		nydusImageBin, nydusdBin = os.Getenv("NYDUS_IMAGE"), os.Getenv("NYDUSD")
		if nydusImageBin != "" && nydusdBin != "" {
			return
		}
		root, err := filepath.Abs(filepath.Join("..", ".."))
		if err != nil {
			binErr = err
			return
		}
		if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !bytes.Contains(b, []byte("module github.com/gonydus/nydus\n")) {
			binErr = fmt.Errorf("NYDUS_IMAGE/NYDUSD not set and %s is not the gonydus repository", root)
			return
		}
		dir, err := os.MkdirTemp("", "converter-e2e-bin-")
		if err != nil {
			binErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/nydus-image", "./cmd/nydusd")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
			return
		}
		if nydusImageBin == "" {
			nydusImageBin = filepath.Join(dir, "nydus-image")
		}
		if nydusdBin == "" {
			nydusdBin = filepath.Join(dir, "nydusd")
		}
	})
	if binErr != nil {
		t.Fatalf("our binaries: %v", binErr)
	}
	return nydusImageBin, nydusdBin
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounting EROFS and FUSE (run as root, as make e2e does)")
	}
}

// requireEROFS skips when the kernel has no EROFS (after trying modprobe).
func requireEROFS(t *testing.T) {
	t.Helper()
	requireRoot(t)
	has := func() bool {
		b, _ := os.ReadFile("/proc/filesystems")
		return bytes.Contains(b, []byte("\terofs\n"))
	}
	if !has() {
		_ = exec.Command("modprobe", "erofs").Run()
	}
	if !has() {
		t.Skip("kernel has no EROFS (not in /proc/filesystems, modprobe erofs failed)")
	}
}

func requireFUSE(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no /dev/fuse: %v", err)
	}
}

func hexSum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// run runs a command with a deadline and fails the test on error.
func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func isMountpoint(p string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	abs, _ := filepath.Abs(p)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == abs {
			return true
		}
	}
	return false
}

// mountKernel exports boot (blobs in blobDir) to an EROFS block image with
// our nydus-image and mounts it with the kernel; it returns the mountpoint.
func mountKernel(t *testing.T, boot, blobDir string) string {
	t.Helper()
	requireEROFS(t)
	bin, _ := binaries(t)
	wd := t.TempDir()
	img := filepath.Join(wd, "disk.erofs")
	run(t, bin, "export", "--log-level", "warn", "--block", "--bootstrap", boot, "--blob-dir", blobDir, "--output", img)
	mnt := filepath.Join(wd, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "erofs", "-o", "loop,ro", img, mnt)
	t.Cleanup(func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("umount %s: %v", mnt, err)
			_ = unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	return mnt
}

// mountNydusd serves boot with our nydusd from a localfs backend over
// blobDir and returns the mountpoint. Cleanup stops it within bounds and
// aborts the FUSE connection if it will not go.
func mountNydusd(t *testing.T, boot, blobDir string) string {
	t.Helper()
	requireFUSE(t)
	_, bin := binaries(t)
	wd := t.TempDir()
	cfg, err := json.Marshal(map[string]any{
		"device": map[string]any{
			"backend": map[string]any{"type": "localfs", "config": map[string]any{"dir": blobDir}},
			"cache":   map[string]any{"type": "blobcache", "config": map[string]any{"work_dir": filepath.Join(wd, "cache")}},
		},
		"mode": "direct", "digest_validate": true, "enable_xattr": true,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(wd, "nydusd.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(wd, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	cmd := exec.Command(bin, "--config", cfgPath, "--bootstrap", boot, "--mountpoint", mnt, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = &logBuf, &logBuf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nydusd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { stopNydusd(t, cmd, exited, mnt) })
	deadline := time.Now().Add(mountTimeout)
	for !isMountpoint(mnt) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("nydusd exited before mounting: %v\n%s", err, logBuf.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nydusd did not mount %s within %v\n%s", mnt, mountTimeout, logBuf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return mnt
}

func stopNydusd(t *testing.T, cmd *exec.Cmd, exited chan error, mnt string) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Errorf("nydusd did not stop within 10s of SIGTERM; aborting its FUSE connection")
		abortFUSE(mnt)
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
	}
	if isMountpoint(mnt) {
		t.Errorf("%s still mounted after nydusd exited", mnt)
		abortFUSE(mnt)
		_ = unix.Unmount(mnt, unix.MNT_DETACH)
	}
}

// abortFUSE aborts the FUSE connection of the mount at mnt, so that no
// reader stays blocked on a server that does not answer.
func abortFUSE(mnt string) {
	var st unix.Stat_t
	done := make(chan error, 1)
	go func() { done <- unix.Stat(mnt, &st) }()
	select {
	case err := <-done:
		if err != nil {
			return
		}
	case <-time.After(2 * time.Second):
		// stat itself hangs: find the device number in mountinfo instead.
		if dev, err := mountDev(mnt); err == nil {
			st.Dev = dev
		} else {
			return
		}
	}
	const ctl = "/sys/fs/fuse/connections"
	if !isMountpoint(ctl) {
		_ = unix.Mount("none", ctl, "fusectl", 0, "")
	}
	_ = os.WriteFile(fmt.Sprintf("%s/%d/abort", ctl, unix.Minor(st.Dev)), []byte("1"), 0o200)
}

func mountDev(mnt string) (uint64, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0, err
	}
	abs, _ := filepath.Abs(mnt)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == abs {
			var maj, min uint32
			if _, err := fmt.Sscanf(f[2], "%d:%d", &maj, &min); err == nil {
				return unix.Mkdev(maj, min), nil
			}
		}
	}
	return 0, errors.New("not mounted")
}

// checkMounts mounts boot both ways (kernel EROFS through export --block,
// and nydusd) and compares each with want.
func checkMounts(t *testing.T, boot, blobDir string, want map[string]rec) {
	t.Helper()
	t.Run("kernel-erofs", func(t *testing.T) {
		got, err := snapshotDir(mountKernel(t, boot, blobDir), readTimeout)
		if err != nil {
			t.Fatal(err)
		}
		compareTrees(t, "kernel EROFS mount of export --block", want, got)
	})
	t.Run("nydusd", func(t *testing.T) {
		mnt := mountNydusd(t, boot, blobDir)
		got, err := snapshotDir(mnt, readTimeout)
		if err != nil {
			abortFUSE(mnt)
			t.Fatal(err)
		}
		compareTrees(t, "nydusd mount", want, got)
	})
}
