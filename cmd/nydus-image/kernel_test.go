package main

import (
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
)

func requireErofs(t *testing.T) {
	t.Helper()
	requireRoot(t)
	testutil.RequireKernelEROFS(t)
}

// TestKernelMountsExport is the kernel oracle: create --compressor none,
// export --block, mount -t erofs -o loop,ro, and compare the mounted tree
// with the source (content, type, mode, owner, mtime, xattrs, link
// targets, device numbers, hardlink groups, sockets included).
func TestKernelMountsExport(t *testing.T) {
	requireErofs(t)
	src := t.TempDir()
	makeTree(t, src, treeOpts{many: 300})
	want := snapshotDir(t, src, nil)
	out := t.TempDir()
	boot := filepath.Join(out, "image.boot")
	nydusImage(t, "create", "--log-level", "warn", "--type", "dir-rafs", "--compressor", "none",
		"--bootstrap", boot, "--blob-dir", out, src)
	img := filepath.Join(out, "image.erofs")
	nydusImage(t, "export", "--log-level", "warn", "--block", "--bootstrap", boot, "--blob-dir", out, "--output", img)
	mnt := t.TempDir()
	if b, err := exec.Command("mount", "-t", "erofs", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount -t erofs -o loop,ro: %v: %s", err, b)
	}
	defer func() {
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Errorf("umount: %v", err)
		}
	}()
	got := snapshotDir(t, mnt, nil)
	compareSnapshots(t, want, got)
}
