package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/daemon/spawn"
	"github.com/gonydus/nydus/internal/testutil"
)

// TestUserspaceMode runs mode 2 through mount.fuse3 as containerd does:
// nydusd serves the extraoption's image at the target with its writable
// overlay on upperdir/workdir; unmounting ends nydusd.
func TestUserspaceMode(t *testing.T) {
	testutil.RequireFUSE(t)
	helper := testutil.RequireBinary(t, "mount.fuse3", "fuse3")
	testutil.RequireBinary(t, "pgrep", "procps")
	f := newImageFixture(t, map[string]string{"keep": "kept", "gone": "to delete"})
	d := f.dirs(t, "upper", "work", "target")
	bin, snap, lower, upper, work, target := f.bin, f.snap, f.lower, d[0], d[1], d[2]
	mountIt := func(opts string) ([]byte, error) {
		cmd := exec.Command(helper, "overlay", target, "-o", opts, "-t", "nydus-overlayfs")
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		return cmd.CombinedOutput()
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",extraoption=" + f.extraOption(f.boot) + ",nydus.overlay=userspace"
	if out, err := mountIt(opts); err != nil {
		t.Fatalf("mount.fuse3: %v: %s", err, out)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	if !spawn.FUSEMountedAt(target) {
		t.Fatal("no FUSE mount at the target")
	}
	if b, err := os.ReadFile(filepath.Join(target, "keep")); err != nil || string(b) != "kept" {
		t.Fatalf("keep = %q, %v", b, err)
	}
	must(t, os.WriteFile(filepath.Join(target, "new"), []byte("written"), 0o644))
	must(t, os.Remove(filepath.Join(target, "gone")))
	if b, _ := os.ReadFile(filepath.Join(upper, "new")); string(b) != "written" {
		t.Fatalf("upper/new = %q", b)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("no 0/0 whiteout for a deleted lower file: %v mode %o", err, st.Mode)
	}
	if fi, err := os.Stat(filepath.Join(snap, "nydus-overlayfs", "nydusd.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("nydusd config (may hold credentials) not 0600: %v", err)
	}
	must(t, unix.Unmount(target, 0))
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-f", "--", "--mountpoint "+target).Output()
		if len(strings.TrimSpace(string(out))) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nydusd still runs after unmount: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Bad input: no extraoption; a broken image path. Clear errors, nothing mounted.
	out, err := mountIt("lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",nydus.overlay=userspace")
	if err == nil || !strings.Contains(string(out), "extraoption") {
		t.Fatalf("userspace mode without extraoption: %v: %s", err, out)
	}
	out, err = mountIt("lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",extraoption=" + f.extraOption(filepath.Join(snap, "missing.boot")) + ",nydus.overlay=userspace")
	if err == nil || !strings.Contains(string(out), "nydusd exited before mounting") {
		t.Fatalf("missing bootstrap: %v: %s", err, out)
	}
	if spawn.FUSEMountedAt(target) {
		t.Fatal("something is mounted after the failures")
	}
}
