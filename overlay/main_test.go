package overlay_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// helperEnv makes the test binary run one helper action instead of the
// tests. Page faults on a FUSE mapping must not happen in the process
// serving the mount: a fault blocks its thread outside any Go safe point,
// so a garbage collection would wait for it forever while the server
// goroutines that would answer the fault are stopped.
const helperEnv = "OVERLAY_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "lock":
		fmt.Print(tryLock(os.Args[1]))
		os.Exit(0)
	case "mmap":
		off, _ := strconv.Atoi(os.Args[2])
		if err := mmapWriteHere(os.Args[1], off, os.Args[3]); err != nil {
			fmt.Fprintln(os.Stderr, errnoName(err))
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(2)
}

// mmapWrite writes data at off of p through a shared writable mapping, in
// a child process.
func mmapWrite(p string, off int, data string) error {
	_, err := helper("mmap", p, strconv.Itoa(off), data)
	return err
}

// helper runs the test binary as helper action with args and returns its
// output.
func helper(action string, args ...string) (string, error) {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+action)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s helper: %w: %s", action, err, out)
	}
	return string(out), nil
}

// tryLock asks for a read lock on p and, refused, for its holder.
func tryLock(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_RDLCK}
	err = syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
	if err == nil {
		return "granted"
	}
	get := syscall.Flock_t{Type: syscall.F_RDLCK}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &get); err != nil {
		return "getlk: " + err.Error()
	}
	return fmt.Sprintf("%s holder=%d", errnoName(err), get.Pid)
}

// asUser runs one shell operation as uid and gid uid (through setpriv:
// the test binary's directory is not open to other users) and returns its
// exit status and error output.
func asUser(uid int, op, path string) (string, error) {
	script := map[string]string{
		"create": `set -C; echo user > "$1"`,
		"write":  `echo user >> "$1"`,
		"trunc":  `: > "$1"`,
		"modes":  `stat -c %a "$1"`,
		"chmod":  `chmod 777 "$1"`,
		"mkdir":  `mkdir "$1"`,
		"unlink": `rm -f "$1"`,
	}[op]
	if script == "" {
		return "", fmt.Errorf("unknown op %s", op)
	}
	id := strconv.Itoa(uid)
	cmd := exec.Command("setpriv", "--reuid="+id, "--regid="+id, "--clear-groups", "sh", "-c", script, "sh", path)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return "", fmt.Errorf("setpriv: %w", err)
	}
	// Messages name the path, which differs between mounts.
	msg := strings.ReplaceAll(string(out), path, "PATH")
	return fmt.Sprintf("exit=%d %s", cmd.ProcessState.ExitCode(), strings.TrimSpace(msg)), nil
}
