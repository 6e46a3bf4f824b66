package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestdataEnv names the environment variable that points at the shared
// test vectors (the directory holding upstream-nydus/) when they do not
// sit at ../shared/testdata beside the repository.
const TestdataEnv = "GONYDUS_TESTDATA"

const modulePath = "github.com/gonydus/nydus"

// TestdataPath returns where the shared test vector elem... is:
// $GONYDUS_TESTDATA/elem..., or <repository>/../shared/testdata/elem....
// It does not check that the path exists; tests that open it skip (or,
// in strict mode, fail) through Testdata or Missing.
func TestdataPath(elem ...string) string {
	dir, err := testdataDir()
	if err != nil {
		dir = filepath.Join(os.TempDir(), "gonydus-testdata-not-found")
	}
	return filepath.Join(append([]string{dir}, elem...)...)
}

// Testdata returns the path of the shared test vector elem..., or skips
// tb (fails it in strict mode) saying where it looked.
func Testdata(tb testing.TB, elem ...string) string {
	tb.Helper()
	dir, err := testdataDir()
	if err != nil {
		Missing(tb, "shared test vectors: %v", err)
		return ""
	}
	p := filepath.Join(append([]string{dir}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		Missing(tb, "shared test vector %v (put the shared testdata at ../shared/testdata beside the repository or set %s)", err, TestdataEnv)
	}
	return p
}

// ReadTestdata returns the content of the shared test vector file
// elem..., or skips tb (fails it in strict mode) saying where it looked.
func ReadTestdata(tb testing.TB, elem ...string) []byte {
	tb.Helper()
	p := Testdata(tb, elem...)
	b, err := os.ReadFile(p)
	if err != nil {
		Missing(tb, "shared test vector %v", err)
	}
	return b
}

func testdataDir() (string, error) {
	if d := os.Getenv(TestdataEnv); d != "" {
		if _, err := os.Stat(d); err != nil {
			return "", fmt.Errorf("%s=%s: %w", TestdataEnv, d, err)
		}
		return d, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	d := filepath.Join(filepath.Dir(root), "shared", "testdata")
	if _, err := os.Stat(d); err != nil {
		return "", fmt.Errorf("%w (set %s to where it is)", err, TestdataEnv)
	}
	return d, nil
}

// moduleRoot walks up from the working directory (a test runs in its
// package's directory) to the directory whose go.mod declares this module.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && declares(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of %s above the working directory", modulePath)
		}
		dir = parent
	}
}

// declares reports whether the go.mod text b declares this module.
func declares(b []byte) bool {
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`) == modulePath
		}
	}
	return false
}
