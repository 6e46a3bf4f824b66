package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// StrictEnv names the environment variable that turns missing
// capabilities into failures.
const StrictEnv = "GONYDUS_STRICT"

// Strict reports whether GONYDUS_STRICT=1 is set.
func Strict() bool { return os.Getenv(StrictEnv) == "1" }

// Missing skips tb saying what is missing, or fails it in strict mode.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	msg := "missing: " + fmt.Sprintf(format, args...)
	if Strict() {
		tb.Fatalf("%s (%s=1: a missing capability fails)", msg, StrictEnv)
		return
	}
	tb.Skip(msg)
}

// Must fails tb when err is not nil.
func Must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// RequireRoot needs euid 0; why says what the test does as root.
func RequireRoot(tb testing.TB, why string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		Missing(tb, "root (euid %d): %s", os.Geteuid(), why)
	}
}

// RequireFUSE needs root and a /dev/fuse that opens read-write.
func RequireFUSE(tb testing.TB) {
	tb.Helper()
	RequireRoot(tb, "mounts FUSE")
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		Missing(tb, "a usable /dev/fuse: %v", err)
		return
	}
	f.Close()
}

// RequireFusermount needs the fusermount3 (or fusermount) helper that
// go-fuse runs to mount and unmount when a server does not mount directly.
func RequireFusermount(tb testing.TB) string {
	tb.Helper()
	if p, err := lookPath("fusermount3"); err == nil {
		return p
	}
	if p, err := lookPath("fusermount"); err == nil {
		return p
	}
	Missing(tb, "fusermount3, which go-fuse mounts through (apt-get install fuse3)")
	return ""
}

// RequireBinary needs the program name, found in PATH or in the sbin and
// bin directories a non-root PATH may leave out, and returns its path;
// pkg names the Debian package that provides it.
func RequireBinary(tb testing.TB, name, pkg string) string {
	tb.Helper()
	p, err := lookPath(name)
	if err != nil {
		Missing(tb, "%s (apt-get install %s)", name, pkg)
	}
	return p
}

// RequireKernelFS needs the kernel file system fs in /proc/filesystems.
func RequireKernelFS(tb testing.TB, fs string) {
	tb.Helper()
	ok, err := kernelHas(fs)
	if err != nil {
		Missing(tb, "/proc/filesystems (%v), so no way to tell whether the kernel has %s", err, fs)
	}
	if !ok && os.Geteuid() == 0 {
		// Loading the module may make it appear.
		_ = exec.Command("modprobe", fs).Run()
		ok, _ = kernelHas(fs)
	}
	if !ok {
		Missing(tb, "%s in this kernel (not in /proc/filesystems, modprobe %s failed)", fs, fs)
	}
}

// RequireKernelEROFS needs the kernel's EROFS driver.
func RequireKernelEROFS(tb testing.TB) { tb.Helper(); RequireKernelFS(tb, "erofs") }

// RequireKernelOverlay needs the kernel's overlayfs.
func RequireKernelOverlay(tb testing.TB) { tb.Helper(); RequireKernelFS(tb, "overlay") }

func kernelHas(fs string) (bool, error) {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == fs {
			return true, nil
		}
	}
	return false, nil
}

// lookPath searches PATH, then the sbin and bin directories: a non-root
// PATH often lacks the sbin ones, where mount helpers such as mount.fuse3
// live.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}
