package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that records Skip and Fatal instead of ending
// the goroutine, so the checks' outcomes can be asserted.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Skip(args ...any)               { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }
func (r *recorder) Fatal(args ...any)              { r.failed = fmt.Sprint(args...) }

func TestRequireBinary(t *testing.T) {
	r := &recorder{TB: t}
	if p := RequireBinary(r, "sh", "dash"); p == "" || r.skipped != "" || r.failed != "" {
		t.Fatalf("sh: path %q, skipped %q, failed %q", p, r.skipped, r.failed)
	}

	t.Setenv(StrictEnv, "")
	r = &recorder{TB: t}
	RequireBinary(r, "gonydus-no-such-tool", "no-such-package")
	if !strings.Contains(r.skipped, "gonydus-no-such-tool") || !strings.Contains(r.skipped, "apt-get install no-such-package") || r.failed != "" {
		t.Fatalf("missing tool: skipped %q, failed %q", r.skipped, r.failed)
	}

	t.Setenv(StrictEnv, "1")
	r = &recorder{TB: t}
	RequireBinary(r, "gonydus-no-such-tool", "no-such-package")
	if !strings.Contains(r.failed, "gonydus-no-such-tool") || !strings.Contains(r.failed, StrictEnv) || r.skipped != "" {
		t.Fatalf("strict: skipped %q, failed %q", r.skipped, r.failed)
	}
}

func TestMust(t *testing.T) {
	r := &recorder{TB: t}
	Must(r, nil)
	if r.failed != "" {
		t.Fatalf("nil error failed: %q", r.failed)
	}
	Must(r, os.ErrNotExist)
	if r.failed != os.ErrNotExist.Error() {
		t.Fatalf("error not reported: %q", r.failed)
	}
}

func TestLookPathSbin(t *testing.T) {
	// A PATH without the sbin directories still finds their programs.
	t.Setenv("PATH", t.TempDir())
	if _, err := lookPath("sh"); err != nil {
		t.Fatalf("sh outside PATH: %v", err)
	}
	if p, err := lookPath("gonydus-no-such-tool"); err == nil {
		t.Fatalf("found a tool that does not exist: %s", p)
	}
}

func TestKernelFS(t *testing.T) {
	if ok, err := kernelHas("proc"); err != nil || !ok {
		t.Fatalf("proc in /proc/filesystems: %v %v", ok, err)
	}
	if ok, _ := kernelHas("gonydusfs"); ok {
		t.Fatal("found a file system that does not exist")
	}
	t.Setenv(StrictEnv, "")
	r := &recorder{TB: t}
	RequireKernelFS(r, "gonydusfs")
	if !strings.Contains(r.skipped, "gonydusfs in this kernel") {
		t.Fatalf("skipped %q", r.skipped)
	}
}

func TestTestdata(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "upstream-nydus"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(TestdataEnv, dir)
	if got, want := TestdataPath("upstream-nydus", "tar"), filepath.Join(dir, "upstream-nydus", "tar"); got != want {
		t.Fatalf("TestdataPath = %s, want %s", got, want)
	}
	r := &recorder{TB: t}
	if got := Testdata(r, "upstream-nydus"); got != filepath.Join(dir, "upstream-nydus") || r.skipped != "" {
		t.Fatalf("Testdata = %s, skipped %q", got, r.skipped)
	}
	if err := os.WriteFile(filepath.Join(dir, "upstream-nydus", "v"), []byte("vector"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b := ReadTestdata(r, "upstream-nydus", "v"); string(b) != "vector" || r.skipped != "" {
		t.Fatalf("ReadTestdata = %q, skipped %q", b, r.skipped)
	}
	t.Setenv(StrictEnv, "")
	r = &recorder{TB: t}
	Testdata(r, "upstream-nydus", "absent")
	if !strings.Contains(r.skipped, "absent") || !strings.Contains(r.skipped, TestdataEnv) {
		t.Fatalf("missing vector: skipped %q", r.skipped)
	}
	t.Setenv(TestdataEnv, filepath.Join(dir, "nowhere"))
	r = &recorder{TB: t}
	Testdata(r, "upstream-nydus")
	if !strings.Contains(r.skipped, "nowhere") {
		t.Fatalf("bad %s: skipped %q", TestdataEnv, r.skipped)
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "deps_test.go")); err != nil {
		t.Fatalf("module root %s: %v", root, err)
	}
	if declares([]byte("// c\nmodule example.com/other\n")) || !declares([]byte("module \""+modulePath+"\"\r\n")) {
		t.Fatal("declares misreads go.mod")
	}
}

func TestCapture(t *testing.T) {
	code, errOut := CaptureStderr(t, func() int { fmt.Fprint(os.Stderr, "to stderr"); return 3 })
	if code != 3 || errOut != "to stderr" {
		t.Fatalf("stderr: %d %q", code, errOut)
	}
	code, out := CaptureStdout(t, func() int { fmt.Fprint(os.Stdout, "to stdout"); return 0 })
	if code != 0 || string(out) != "to stdout" {
		t.Fatalf("stdout: %d %q", code, out)
	}
}
