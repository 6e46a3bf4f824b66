package overlay_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
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
	cmd := exec.Command(os.Args[0], p, strconv.Itoa(off), data)
	cmd.Env = append(os.Environ(), helperEnv+"=mmap")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mmap helper: %v: %s", err, out)
	}
	return nil
}
