package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/ptytest"
	"github.com/gonydus/nydus/internal/tartest"
)

// mainEnv makes the test binary run nydus-image's main (TestMain), so
// tests can run the command with its stderr on a terminal.
const mainEnv = "NYDUS_IMAGE_TEST_MAIN"

func TestMain(m *testing.M) { ptytest.RunMain(m, mainEnv, run, removeBuiltBinary) }

// progressTar writes a tar of n MiB of incompressible file data.
func progressTar(t *testing.T, dir string, mib int) []byte {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{7})
	var files []tartest.Entry
	for i := range mib {
		data := make([]byte, 1<<20)
		rng.Read(data)
		files = append(files, tartest.File(filepath.Join("d", string(rune('a'+i%26))+strings.Repeat("x", i/26)), "", tartest.Bytes(data)))
	}
	return tartest.Tar(t, files...)
}

var (
	// barRe is a finished bar: its name, a full bar, done of total, done.
	barRe = regexp.MustCompile(`in\.tar +\[=+\] +8\.0 MiB / 8\.0 MiB +done`)
	// lineRe is a progress line logged without a terminal.
	lineRe = regexp.MustCompile(`level=INFO msg="fifo-text [0-9.]+ (B|KiB|MiB), [0-9.]+ (B|KiB|MiB)/s" progress=fifo-text done_bytes=\d+`)
)

// TestCreateProgressOnTerminal runs nydus-image create with stderr on a
// pseudo-terminal: a bar for the input is drawn (and redrawn in place:
// cursor up, erase) on stderr, nothing on stdout, no progress lines; with
// --quiet no bar.
func TestCreateProgressOnTerminal(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.tar")
	if err := os.WriteFile(in, progressTar(t, dir, 8), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, quiet := range []bool{false, true} {
		args := []string{"create", "--type", "tar-rafs", "--compressor", "none", "--blob", filepath.Join(dir, "blob"),
			"--bootstrap", filepath.Join(dir, "boot"), in}
		if quiet {
			args = append(args, "--quiet")
		}
		// An unsized terminal too: bars must not vanish there.
		for _, size := range [][2]uint16{{100, 30}, {0, 0}} {
			res, err := ptytest.Run(ptytest.SelfCommand(t, mainEnv, nil, args...), size[0], size[1], 2*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if res.Err != nil {
				t.Fatalf("create: %v\n%s", res.Err, res.Stderr)
			}
			if res.Stdout != "" {
				t.Errorf("stdout holds %q, want nothing", res.Stdout)
			}
			if !strings.Contains(res.Stderr, "image built") {
				t.Errorf("quiet=%v %v: no final log record on the terminal:\n%q", quiet, size, res.Stderr)
			}
			drawn := barRe.MatchString(res.Stderr)
			if drawn == quiet {
				t.Errorf("quiet=%v terminal %v: bar drawn %v:\n%q", quiet, size, drawn, res.Stderr)
			}
			if strings.Contains(res.Stderr, "progress=") {
				t.Errorf("quiet=%v: progress lines on a terminal:\n%q", quiet, res.Stderr)
			}
		}
	}
}

// TestCreateProgressLines runs nydus-image create with stderr on a pipe
// and its tar arriving through a FIFO with a pause: progress lines with
// human sizes and rates are logged every NYDUS_PROGRESS_INTERVAL, no bar
// is drawn; with --quiet no line; with --log-format json every line of
// stderr parses as JSON.
func TestCreateProgressLines(t *testing.T) {
	dir := t.TempDir()
	data := progressTar(t, dir, 4)
	for _, mode := range []string{"text", "quiet", "json"} {
		fifo := filepath.Join(dir, "fifo-"+mode)
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"create", "--type", "tar-rafs", "--compressor", "none", "--blob", filepath.Join(dir, "blob-"+mode),
			"--bootstrap", filepath.Join(dir, "boot-"+mode), fifo}
		switch mode {
		case "quiet":
			args = append(args, "--quiet")
		case "json":
			args = append(args, "--log-format", "json")
		}
		cmd := ptytest.SelfCommand(t, mainEnv, []string{"NYDUS_PROGRESS_INTERVAL=20ms"}, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wrote := make(chan error, 1)
		go func() {
			f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				wrote <- err
				return
			}
			defer f.Close()
			half := len(data) / 2
			if _, err := f.Write(data[:half]); err != nil {
				wrote <- err
				return
			}
			time.Sleep(500 * time.Millisecond) // a slow producer: lines must keep coming
			_, err = f.Write(data[half:])
			wrote <- err
		}()
		timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
		err := cmd.Wait()
		timer.Stop()
		if err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, stderr.String())
		}
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
		if stdout.Len() != 0 {
			t.Errorf("%s: stdout holds %q", mode, stdout.String())
		}
		out := stderr.String()
		ptytest.CheckPiped(t, mode, out, lineRe)
		if mode == "json" {
			checkJSONLines(t, out, "progress", 2)
		}
	}
}
