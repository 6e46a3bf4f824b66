package main

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
)

// TestThroughMountFuse3 runs the helper the way containerd's mount package
// and mount(8) reach it: /sbin/mount.fuse3 -t nydus-overlayfs, which execs
// `nydus-overlayfs overlay TARGET -o OPTIONS,dev,suid` through /bin/sh.
func TestThroughMountFuse3(t *testing.T) {
	testutil.RequireRoot(t, "mounts overlayfs")
	helper := testutil.RequireBinary(t, "mount.fuse3", "fuse3")
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "nydus-overlayfs"), ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v: %s", err, out)
	}
	root := t.TempDir()
	l1, l2, upper, work, target := filepath.Join(root, "l1"), filepath.Join(root, "l2"), filepath.Join(root, "upper"), filepath.Join(root, "work"), filepath.Join(root, "target")
	for _, d := range []string{l1, l2, upper, work, target} {
		testutil.Must(t, os.MkdirAll(d, 0o755))
	}
	testutil.Must(t, os.WriteFile(filepath.Join(l1, "top"), []byte("from l1"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(l2, "top"), []byte("from l2"), 0o644))
	testutil.Must(t, os.WriteFile(filepath.Join(l2, "bottom"), []byte("from l2"), 0o644))
	extra := base64.StdEncoding.EncodeToString([]byte(`{"source":"/x/image.boot","config":"{\"device\":{}}","snapshotdir":"/x","fs_version":"v6"}`))
	opts := "lowerdir=" + l1 + ":" + l2 + ",upperdir=" + upper + ",workdir=" + work + ",extraoption=" + extra + ",io.katacontainers.volume=abc"
	cmd := exec.Command(helper, "overlay", target, "-o", opts, "-t", "nydus-overlayfs")
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mount.fuse3: %v: %s", err, out)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	var line string
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, " "+target+" ") {
			line = l
		}
	}
	if !strings.Contains(line, " - overlay overlay ") || strings.Contains(line, "nodev") || strings.Contains(line, "nosuid") || strings.Contains(line, " ro,") {
		t.Fatalf("mount is not a writable dev,suid overlay: %s", line)
	}
	if strings.Contains(line, "extraoption") || strings.Contains(line, "katacontainers") {
		t.Fatalf("private options reached the kernel: %s", line)
	}
	b, err := os.ReadFile(filepath.Join(target, "top"))
	if err != nil || string(b) != "from l1" {
		t.Fatalf("top = %q, %v", b, err)
	}
	testutil.Must(t, os.WriteFile(filepath.Join(target, "bottom"), []byte("changed"), 0o644))
	if b, _ := os.ReadFile(filepath.Join(upper, "bottom")); string(b) != "changed" {
		t.Fatalf("write did not copy up into upperdir: %q", b)
	}
	testutil.Must(t, unix.Unmount(target, 0))

	// Bad options: a clear error, non-zero exit, nothing mounted.
	cmd = exec.Command(helper, "overlay", target, "-o", "upperdir="+upper+",workdir="+work, "-t", "nydus-overlayfs")
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "lowerdir") {
		t.Fatalf("missing lowerdir: err %v, output %s", err, out)
	}
	var st, pst unix.Stat_t
	testutil.Must(t, unix.Stat(target, &st))
	testutil.Must(t, unix.Stat(root, &pst))
	if st.Dev != pst.Dev {
		t.Fatal("something got mounted despite the error")
	}
}

// TestLongOptionsAreCompacted mounts with more lowerdir text than fits in
// one page: the helper must shorten them relative to a common parent.
func TestLongOptionsAreCompacted(t *testing.T) {
	testutil.RequireRoot(t, "mounts overlayfs")
	root := t.TempDir()
	base := filepath.Join(root, strings.Repeat("long-directory-name-", 4))
	var lowers []string
	for i := range 40 {
		d := filepath.Join(base, "snapshots", strings.Repeat("x", 40)+string(rune('a'+i%26))+strings.Repeat("y", i), "fs")
		testutil.Must(t, os.MkdirAll(d, 0o755))
		lowers = append(lowers, d)
	}
	testutil.Must(t, os.WriteFile(filepath.Join(lowers[39], "deepest"), []byte("ok"), 0o644))
	target := filepath.Join(root, "t")
	testutil.Must(t, os.MkdirAll(target, 0o755))
	opts := "lowerdir=" + strings.Join(lowers, ":")
	if len(opts) < os.Getpagesize() {
		t.Fatalf("options only %d bytes; the test needs more than a page", len(opts))
	}
	wd, err := os.Getwd()
	testutil.Must(t, err)
	defer os.Chdir(wd) // run() changes directory to shorten the options
	if code := run([]string{"overlay", target, "-o", opts}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	if b, err := os.ReadFile(filepath.Join(target, "deepest")); err != nil || string(b) != "ok" {
		t.Fatalf("deepest = %q, %v", b, err)
	}
}

// TestExitCodes: like mount(8) helpers, a bad invocation exits 1 and a
// mount that fails exits 32.
func TestExitCodes(t *testing.T) {
	if code := run([]string{"overlay"}); code != exitUsage {
		t.Fatalf("no target: exit %d, want %d", code, exitUsage)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	opts := "lowerdir=" + missing + "/l,upperdir=" + missing + "/u,workdir=" + missing + "/w"
	if code := run([]string{"overlay", missing, "-o", opts}); code != exitFailure {
		t.Fatalf("failed mount: exit %d, want %d", code, exitFailure)
	}
}
