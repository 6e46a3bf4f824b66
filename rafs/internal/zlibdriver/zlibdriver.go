// Package zlibdriver runs the zran tests' Python drivers of the real zlib
// (libz.so.1 through ctypes), the oracle for our inflate contexts. The
// drivers import zlibctypes.py from this directory.
package zlibdriver

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/testutil"
)

// Run runs `python3 script args...` with this package's directory on
// PYTHONPATH and returns its output. It skips tb, saying which, when
// python3 or libz.so.1 is missing, and fails it when the driver fails.
func Run(tb testing.TB, script string, args ...string) []byte {
	tb.Helper()
	python := testutil.RequireBinary(tb, "python3", "python3")
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("zlibdriver: cannot find its own directory")
	}
	cmd := exec.Command(python, append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+filepath.Dir(self))
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "libz") && strings.Contains(string(out), "OSError") {
			testutil.Missing(tb, "libz.so.1 (apt-get install zlib1g): %s", out)
		}
		tb.Fatalf("%s: %v\n%s", script, err, out)
	}
	return out
}
