package testutil

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fuseSuperMagic is statfs's f_type of a FUSE mount.
const fuseSuperMagic = 0x65735546

// MountBindfs mounts bindfs (a FUSE passthrough file system; Debian's
// bindfs) over a fresh directory of dir and returns its mount point; the
// mount goes when the test ends. Attributes are not cached: bindfs makes
// each name of a hard-linked file its own FUSE inode, whose cached link
// count would go stale. Kernel overlayfs refuses an upper dir on it (a
// FUSE upper needs RENAME_WHITEOUT, which bindfs answers with EINVAL, as
// every renameat2 flag), while it keeps whiteout devices, trusted xattrs
// and hard links.
func MountBindfs(tb testing.TB, dir string) string {
	tb.Helper()
	bindfs := RequireBinary(tb, "bindfs", "bindfs")
	src, mnt := filepath.Join(dir, "bindfs-src"), filepath.Join(dir, "bindfs")
	for _, d := range []string{src, mnt} {
		Must(tb, syscall.Mkdir(d, 0o700))
	}
	cmd := exec.Command(bindfs, "-f", "-o", "attr_timeout=0,entry_timeout=0", src, mnt)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	Must(tb, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	for i := 0; ; i++ {
		var fs syscall.Statfs_t
		if syscall.Statfs(mnt, &fs) == nil && fs.Type == fuseSuperMagic {
			return mnt
		}
		if i == 100 {
			tb.Fatalf("bindfs did not mount %s within 5 s: %s", mnt, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
