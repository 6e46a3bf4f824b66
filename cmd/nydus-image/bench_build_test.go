package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/testutil"
)

// runTimed runs name with stdin from the file in (none when empty) and
// returns its wall-clock and CPU (user+system) time.
func runTimed(tb testing.TB, in, name string, args ...string) (wall, cpu time.Duration) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		tb.Skipf("baseline %s is not installed: %v", name, err)
	}
	cmd := exec.Command(name, args...)
	if in != "" {
		f, err := os.Open(in)
		testutil.Must(tb, err)
		defer f.Close()
		cmd.Stdin = f
	}
	cmd.Stdout = io.Discard
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s: %v: %s", name, err, stderr.String())
	}
	return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// BenchmarkTarRafsVsZstd runs `nydus-image create --type tar-rafs
// --compressor zstd --digester blake3` as users do, on a tar of the Go
// tree given as a file and on stdin, each right after `zstd -T0 -3` of the
// same input in the same way, and reports the speed ratio (zstd's time
// over ours: ≥ 1 is as fast as zstd). On a loaded machine the wall-clock
// ratio mostly measures how much CPU each process got; the CPU-time ratio
// (user+system) is reported beside it.
func BenchmarkTarRafsVsZstd(b *testing.B) {
	dir := b.TempDir()
	in := filepath.Join(dir, "layer.tar")
	size := writeCorpusTar(b, runtime.GOROOT(), in, benchCorpusLimit, 1) //nolint:staticcheck // the tree of the toolchain running this test, which is on this machine
	mb := float64(size) / (1 << 20)
	bin := builtBinary(b)
	create := func(stdin bool) (time.Duration, time.Duration) {
		out := b.TempDir()
		args := []string{"create", "--log-level", "warn", "--type", "tar-rafs", "--compressor", "zstd", "--digester", "blake3",
			"--bootstrap", filepath.Join(out, "boot"), "--blob-dir", out}
		if stdin {
			return runTimed(b, in, bin, append(args, "/dev/stdin")...)
		}
		return runTimed(b, "", bin, append(args, in)...)
	}
	b.ResetTimer()
	for range b.N {
		for _, stdin := range []bool{false, true} {
			var zw, zc time.Duration
			if stdin {
				zw, zc = runTimed(b, in, "zstd", "-T0", "-3", "-q", "-c")
			} else {
				zw, zc = runTimed(b, "", "zstd", "-T0", "-3", "-q", "-c", in)
			}
			ow, oc := create(stdin)
			how := "file"
			if stdin {
				how = "stdin"
			}
			b.ReportMetric(zw.Seconds()/ow.Seconds(), "x_zstd_wall_"+how)
			b.ReportMetric(zc.Seconds()/oc.Seconds(), "x_zstd_cpu_"+how)
			b.Logf("%s, %.0f MiB: tar-rafs %.2fs wall %.2fs cpu (%.0f MB/s); zstd -T0 -3 %.2fs wall %.2fs cpu; ratio wall %.2f cpu %.2f",
				how, mb, ow.Seconds(), oc.Seconds(), mb/ow.Seconds(), zw.Seconds(), zc.Seconds(), zw.Seconds()/ow.Seconds(), zc.Seconds()/oc.Seconds())
		}
	}
}
