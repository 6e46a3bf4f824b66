package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
)

// TestContainerdMountPackage mounts through containerd's own mount code,
// as the runc shim does for nydus-snapshotter's mounts: mount.Mount{Type:
// "fuse.nydus-overlayfs"}.Mount(target) runs mount.fuse3, which runs the
// helper found on containerd's PATH. Both modes.
func TestContainerdMountPackage(t *testing.T) {
	testutil.RequireRoot(t, "mounts overlayfs and FUSE")
	testutil.RequireBinary(t, "mount.fuse3", "fuse3")
	f := newImageFixture(t, map[string]string{"f": "image file"})
	t.Setenv("PATH", f.bin+":"+os.Getenv("PATH"))
	root, lower := f.root, f.lower

	for _, mode := range []string{"kernel", "userspace"} {
		t.Run(mode, func(t *testing.T) {
			upper, work, target := filepath.Join(root, mode, "upper"), filepath.Join(root, mode, "work"), filepath.Join(root, mode, "target")
			for _, d := range []string{upper, work, target} {
				testutil.Must(t, os.MkdirAll(d, 0o755))
			}
			m := mount.Mount{Type: "fuse.nydus-overlayfs", Source: "overlay", Options: []string{
				"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work,
				"extraoption=" + f.extraOption(f.boot), "nydus.overlay=" + mode}}
			if err := m.Mount(target); err != nil {
				t.Fatalf("containerd mount: %v", err)
			}
			defer unix.Unmount(target, unix.MNT_DETACH)
			info, _ := os.ReadFile("/proc/self/mountinfo")
			want := map[string]string{"kernel": " - overlay overlay ", "userspace": " - fuse."}[mode]
			found := false
			for _, l := range strings.Split(string(info), "\n") {
				if strings.Contains(l, " "+target+" ") && strings.Contains(l, want) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no %q mount at %s", want, target)
			}
			if b, err := os.ReadFile(filepath.Join(target, "f")); err != nil || string(b) != "image file" {
				t.Fatalf("f = %q, %v", b, err)
			}
			testutil.Must(t, os.WriteFile(filepath.Join(target, "new"), []byte(mode), 0o644))
			if b, _ := os.ReadFile(filepath.Join(upper, "new")); string(b) != mode {
				t.Fatalf("upper/new = %q", b)
			}
			testutil.Must(t, mount.UnmountAll(target, 0))
		})
	}
}
