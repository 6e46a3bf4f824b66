package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/testregistry"
	"github.com/gonydus/nydus/internal/testutil"
)

func TestUsage(t *testing.T) {
	for args, want := range map[string]int{
		"":                                2,
		"--help":                          0,
		"--version":                       0,
		"frobnicate":                      2,
		"convert --help":                  0,
		"convert --source a":              2,
		"convert --source a --target b x": 2,
		"convert --source a --target b --fs-chunk-size 0x3000":                          1,
		"convert --source a --target b --fs-version 5":                                  1,
		"convert --source a --target b --prefetch-dir etc":                              1,
		"convert --source a --target b --target-suffix -nydus":                          2,
		"convert --target-suffix -nydus":                                                2,
		"check":                                                                         2,
		"check --target 127.0.0.1:1/a:b --nydusd /x --nydus-image /y --log-level error": 1,
		"check --target a --log-level loud":                                             2,
	} {
		if got := run(strings.Fields(args)); got != want {
			t.Errorf("nydusify %s: exit %d, want %d", args, got, want)
		}
	}
}

// TestConvertCheck runs both subcommands against an in-process registry.
func TestConvertCheck(t *testing.T) {
	host := testregistry.Start(t).Host
	testregistry.PushRandom(t, host+"/random:latest", 100000, 3)
	work := t.TempDir()
	for _, layout := range []string{"", "--docker-runnable"} {
		suffix := "-nydus" + strings.TrimPrefix(layout, "--")
		tag := host + "/random:latest" + suffix
		args := []string{"convert", "--source", host + "/random:latest", "--target-suffix", suffix, "--work-dir", work,
			"--fs-chunk-size", "0x10000", "--log-level", "warn", "--platform", "linux/amd64"}
		if layout != "" {
			args = append(args, layout)
		}
		if code := run(args); code != 0 {
			t.Fatalf("convert %s: exit %d", layout, code)
		}
		if code := run([]string{"check", "--target", tag, "--source", host + "/random:latest", "--work-dir", work,
			"--log-level", "warn", "--platform", "linux/amd64"}); code != 0 {
			t.Fatalf("check %s: exit %d", layout, code)
		}
	}
	if code := run([]string{"check", "--target", host + "/random:latest", "--log-level", "error", "--platform", "linux/amd64"}); code != 1 {
		t.Fatalf("check of an OCI image: exit %d, want 1", code)
	}
}

// runCapture runs nydusify with args and returns the exit code and what
// it wrote to stderr.
func runCapture(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return testutil.CaptureStderr(t, func() int { return run(args) })
}

// TestUpstreamSpellings converts and checks with upstream's spellings:
// global options before the subcommand, the --chunk-size alias,
// --plain-http, accepted no-op options, and options from upstream's
// environment variables; the results must check out against the source.
// Refused options and subcommands fail naming why.
func TestUpstreamSpellings(t *testing.T) {
	host := testregistry.Start(t).Host
	src := host + "/up:latest"
	testregistry.PushRandom(t, src, 50000, 2)
	work := t.TempDir()
	logFile := filepath.Join(t.TempDir(), "nydusify.log")
	if code, msg := runCapture(t, "--log-level", "warn", "--log-file", logFile, "convert", "--source", src, "--target", src+"-a",
		"--chunk-size", "0x10000", "--fs-align-chunk", "--backend-aligned-chunk", "--push-retry-count", "1", "--push-retry-delay", "1s",
		"--plain-http", "--build-cache-version", "v2", "--nydus-image", "/nonexistent", "--work-dir", work, "--platform", "linux/amd64"); code != 0 {
		t.Fatalf("convert with upstream spellings: exit %d: %s", code, msg)
	}
	if _, err := os.Stat(logFile); err != nil {
		t.Fatalf("--log-file: %v", err)
	}
	if code, msg := runCapture(t, "-D", "check", "--target", src+"-a", "--source", src, "--work-dir", work,
		"--nydusd", "/nonexistent", "--platform", "linux/amd64", "-l", "error"); code != 0 {
		t.Fatalf("check: exit %d: %s", code, msg)
	}
	// From the environment, as upstream's urfave/cli EnvVars; the command
	// line wins over the environment.
	t.Setenv("SOURCE", src)
	t.Setenv("TARGET_SUFFIX", "-env")
	t.Setenv("FS_CHUNK_SIZE", "0x3000") // invalid: must be overridden below
	t.Setenv("WORK_DIR", work)
	t.Setenv("LOG_LEVEL", "error")
	if code, msg := runCapture(t, "convert", "--fs-chunk-size", "0x10000", "--platform", "linux/amd64"); code != 0 {
		t.Fatalf("convert from the environment: exit %d: %s", code, msg)
	}
	if code, msg := runCapture(t, "check", "--target", src+"-env", "--platform", "linux/amd64"); code != 0 {
		t.Fatalf("check of the image converted from the environment: exit %d: %s", code, msg)
	}
	if code, msg := runCapture(t, "convert", "--platform", "linux/amd64"); code == 0 || !strings.Contains(msg, "0x3000") {
		t.Fatalf("FS_CHUNK_SIZE=0x3000 from the environment was not used: exit %d: %s", code, msg)
	}
	os.Unsetenv("FS_CHUNK_SIZE")
	os.Unsetenv("SOURCE")
	os.Unsetenv("TARGET_SUFFIX")

	base := []string{"convert", "--source", src, "--target", src + "-x"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(base, "--source-archive", "a.tar"), "archives"},
		{append(base, "--target-archive", "a.tar"), "archives"},
		{append(base, "--source-backend-type", "oss"), "object storage"},
		{append(base, "--backend-type", "s3", "--backend-config", "{}"), "object storage"},
		{append(base, "--backend-config-file", "x.json"), "object storage"},
		{append(base, "--backend-force-push"), "object storage"},
		{append(base, "--build-cache", "r/c:t"), "build cache"},
		{append(base, "--build-cache-tag", "t"), "build cache"},
		{append(base, "--chunk-dict", "bootstrap:registry:r/d:t"), "chunk dictionaries"},
		{append(base, "--merge-platform"), "index"},
		{append(base, "--multi-platform"), "index"},
		{append(base, "--all-platforms"), "--platform"},
		{append(base, "--platform", "linux/amd64,linux/arm64"), "one platform"},
		{append(base, "--reverse"), "Nydus to OCI"},
		{append(base, "--docker-v2-format"), "Docker v2"},
		{append(base, "--batch-size", "0x100000"), "batch"},
		{append(base, "--output-json", "o.json"), "metrics"},
		{[]string{"check", "--target", src, "--target-backend-type", "oss"}, "object storage"},
		{[]string{"check", "--target", src, "--source-backend-config-file", "x"}, "object storage"},
		{[]string{"check", "--target", src, "--multi-platform"}, "OCI and Nydus"},
		{[]string{"mount", "--target", src}, "nydusd"},
		{[]string{"view", "--target", src}, "nydusd"},
		{[]string{"build", "--source-dir", "x", "--name", "y"}, "nydus-image create"},
		{[]string{"pack", "--target-dir", "x", "--meta", "y"}, "nydus-image create"},
		{[]string{"copy", "--source", src, "--target", src + "-c"}, "copying"},
		{[]string{"optimize", "--source", src, "--target", src + "-o"}, "prefetch"},
		{[]string{"commit", "--container", "c", "--target", src}, "container"},
		{[]string{"chunkdict", "generate", "--sources", src}, "chunk"},
	} {
		code, msg := runCapture(t, tc.args...)
		if code != 2 || !strings.Contains(msg, tc.want) {
			t.Errorf("nydusify %q: exit %d, %q; want 2 naming %q", tc.args, code, msg, tc.want)
		}
	}
}
