package ptytest

import (
	"os"
	"os/exec"
	"testing"
)

// SelfCommand is the test binary run as the command under test: the
// package's TestMain runs the command's main when mainEnv is "1", so a
// test can run it with its stderr on a terminal without building it.
func SelfCommand(t *testing.T, mainEnv string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(append(os.Environ(), mainEnv+"=1"), env...)
	return cmd
}

// RunMain is the TestMain of a package whose tests use SelfCommand: when
// mainEnv is "1" the test binary is the command, and exits with what run
// returns for its arguments; otherwise it runs the tests, then the
// cleanups (os.Exit skips deferred calls).
func RunMain(m *testing.M, mainEnv string, run func(args []string) int, cleanups ...func()) {
	if os.Getenv(mainEnv) == "1" {
		os.Exit(run(os.Args[1:]))
	}
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	os.Exit(code)
}
