package overlay

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestXattrAtCallsMatchProcPath checks getxattrat and listxattrat against
// the calls through an O_PATH descriptor's /proc/self/fd link (the path
// taken without them) on a file, a directory, a symlink and a missing
// name: same values, sizes and errors.
func TestXattrAtCallsMatchProcPath(t *testing.T) {
	d := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(d, "file"), nil, 0o644))
	must(os.Mkdir(filepath.Join(d, "dir"), 0o755))
	must(os.Symlink("file", filepath.Join(d, "link")))
	if err := unix.Lsetxattr(filepath.Join(d, "file"), "user.a", []byte("value-a"), 0); errors.Is(err, unix.ENOTSUP) {
		t.Skipf("the test directory's file system has no user xattrs: %v", err)
	} else {
		must(err)
	}
	must(unix.Lsetxattr(filepath.Join(d, "file"), "user.bb", []byte("b"), 0))
	must(unix.Lsetxattr(filepath.Join(d, "dir"), "user.overlay.opaque", []byte("y"), 0))
	dirfd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(err)
	defer unix.Close(dirfd)
	if _, err := getxattrat(dirfd, "file", "user.a", nil); errors.Is(err, errNoAtCall) {
		t.Skipf("this kernel has no getxattrat (Linux 6.13+): only the /proc path is used")
	}

	type result struct {
		k   int
		val string
		err error
	}
	for _, name := range []string{"file", "dir", "link", "missing", "."} {
		for _, attr := range []string{"user.a", "user.bb", "user.overlay.opaque", "user.none"} {
			for _, size := range []int{0, 1, 64} {
				buf := make([]byte, size)
				k, err := getxattrat(dirfd, name, attr, buf)
				at := result{k, string(buf[:max(k, 0)*min(1, size)]), err}
				if err != nil {
					at.k = 0 // callers read the count only without an error
				}
				buf = make([]byte, size)
				var proc result
				perr := withObj(dirfd, name, func(p string) error {
					k, err := unix.Getxattr(p, attr, buf)
					proc = result{k, string(buf[:max(k, 0)*min(1, size)]), err}
					if err != nil {
						proc.k = 0
					}
					return nil
				})
				if perr != nil {
					proc.err = perr
				}
				if at != proc {
					t.Errorf("getxattr %s %s (%d bytes): at-call %+v, /proc path %+v", name, attr, size, at, proc)
				}
			}
		}
		var atNames, procNames []string
		atNames, atErr := listNames(func(buf []byte) (int, error) { return listxattrat(dirfd, name, buf) })
		procErr := withObj(dirfd, name, func(p string) error {
			var err error
			procNames, err = listNames(func(buf []byte) (int, error) { return unix.Listxattr(p, buf) })
			return err
		})
		if !errors.Is(atErr, procErr) || len(atNames) != len(procNames) {
			t.Errorf("listxattr %s: at-call %q %v, /proc path %q %v", name, atNames, atErr, procNames, procErr)
			continue
		}
		for i := range atNames {
			if atNames[i] != procNames[i] {
				t.Errorf("listxattr %s: at-call %q, /proc path %q", name, atNames, procNames)
			}
		}
	}
	// The values themselves, once.
	buf := make([]byte, 16)
	if k, err := getxattrat(dirfd, "file", "user.a", buf); err != nil || string(buf[:k]) != "value-a" {
		t.Errorf("getxattrat file user.a = %q, %v; want value-a", buf[:max(k, 0)], err)
	}
	if k, err := getxattrAt(dirfd, "file", "user.a", buf[:2]); !errors.Is(err, unix.ERANGE) || k != 7 {
		t.Errorf("getxattrAt with a short buffer = %d, %v; want 7, ERANGE", k, err)
	}
}
