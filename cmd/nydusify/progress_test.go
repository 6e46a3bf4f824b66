package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/ptytest"
	"github.com/gonydus/nydus/internal/testregistry"
)

// mainEnv makes the test binary run nydusify's main (TestMain), so tests
// can run the command with its stderr on a terminal.
const mainEnv = "NYDUSIFY_TEST_MAIN"

func TestMain(m *testing.M) { ptytest.RunMain(m, mainEnv, run) }

// slowBlobs serves layer blobs in two halves with a pause between them,
// as a slow registry does, so progress has something to show.
func slowBlobs(h http.Handler, pause time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/sha256:") {
			h.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(&pausingWriter{ResponseWriter: w, pause: pause}, r)
	})
}

type pausingWriter struct {
	http.ResponseWriter
	pause  time.Duration
	paused bool
}

func (p *pausingWriter) Write(b []byte) (int, error) {
	if p.paused || len(b) < 2 {
		return p.ResponseWriter.Write(b)
	}
	p.paused = true
	n, err := p.ResponseWriter.Write(b[:len(b)/2])
	if err != nil {
		return n, err
	}
	if f, ok := p.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	time.Sleep(p.pause)
	m, err := p.ResponseWriter.Write(b[len(b)/2:])
	return n + m, err
}

var (
	// layerBarRe is a finished layer bar.
	layerBarRe = regexp.MustCompile(`layer [1-3]/3 sha256:[0-9a-f]{12}… +\[=+\] +[0-9.]+ (KiB|MiB) / [0-9.]+ (KiB|MiB) +done`)
	// layerLineRe is a layer's progress line without a terminal.
	layerLineRe = regexp.MustCompile(`msg="layer [1-3]/3 sha256:[0-9a-f]{12}… [0-9.]+ (B|KiB|MiB) of [0-9.]+ (KiB|MiB), [0-9.]+ (B|KiB|MiB)/s"`)
)

// TestConvertProgress runs nydusify convert against a slow in-process
// registry: on a pseudo-terminal a bar per layer is drawn on stderr; on a
// pipe periodic lines with human sizes and rates are logged per layer
// (and parse as JSON with --log-format json); --quiet shows neither;
// stdout holds only the pushed reference.
func TestConvertProgress(t *testing.T) {
	srv := httptest.NewServer(slowBlobs(testregistry.Start(t).Handler(), 300*time.Millisecond))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	src := host + "/progress:latest"
	testregistry.PushRandom(t, src, 200000, 3)
	work := t.TempDir()
	convertArgs := func(suffix string, extra ...string) []string {
		return append([]string{"convert", "--source", src, "--target-suffix", "-" + suffix, "--work-dir", work,
			"--fs-chunk-size", "0x10000", "--platform", "linux/amd64"}, extra...)
	}
	env := []string{"NYDUS_PROGRESS_INTERVAL=50ms"}
	stdoutRe := regexp.MustCompile(`^` + regexp.QuoteMeta(host) + `/progress:latest-\w+@sha256:[0-9a-f]{64}\n$`)

	for _, quiet := range []bool{false, true} {
		suffix := "tty"
		args := convertArgs(suffix)
		if quiet {
			suffix = "ttyquiet"
			args = convertArgs(suffix, "--quiet")
		}
		res, err := ptytest.Run(ptytest.SelfCommand(t, mainEnv, env, args...), 120, 30, 3*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if res.Err != nil {
			t.Fatalf("convert: %v\n%s", res.Err, res.Stderr)
		}
		if !stdoutRe.MatchString(res.Stdout) {
			t.Errorf("stdout %q, want only the pushed reference", res.Stdout)
		}
		bars := len(layerBarRe.FindAllString(res.Stderr, -1))
		if !quiet && bars < 3 {
			t.Errorf("%d finished layer bars on the terminal, want one per layer:\n%q", bars, res.Stderr)
		}
		if quiet && (bars > 0 || strings.Contains(res.Stderr, "[=")) {
			t.Errorf("--quiet drew bars:\n%q", res.Stderr)
		}
		if layerLineRe.MatchString(res.Stderr) {
			t.Errorf("progress lines on a terminal:\n%q", res.Stderr)
		}
	}

	// check on a terminal: a bar for the image's file data, one per
	// source layer flattened; the verdict alone on stdout.
	res, err := ptytest.Run(ptytest.SelfCommand(t, mainEnv, env, "check", "--target", src+"-tty", "--source", src, "--work-dir", work,
		"--platform", "linux/amd64"), 120, 30, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if res.Err != nil {
		t.Fatalf("check: %v\n%s", res.Err, res.Stderr)
	}
	if !strings.HasSuffix(res.Stdout, "source compared: true)\n") || strings.Count(res.Stdout, "\n") != 1 {
		t.Errorf("check stdout %q, want the verdict alone", res.Stdout)
	}
	dataBar := regexp.MustCompile(`image data \(\d+ files\) +\[=+\] +[0-9.]+ (B|KiB|MiB) / [0-9.]+ (B|KiB|MiB) +done`)
	sourceBar := regexp.MustCompile(`source layer [1-3]/3 sha256:[0-9a-f]{12}… +\[=+\] +[0-9.]+ KiB / [0-9.]+ KiB +done`)
	if !dataBar.MatchString(res.Stderr) || len(sourceBar.FindAllString(res.Stderr, -1)) < 3 {
		t.Errorf("check on a terminal: no bar for the image data or the source layers:\n%q", res.Stderr)
	}

	for _, mode := range []string{"text", "quiet", "json"} {
		var args []string
		switch mode {
		case "text":
			args = convertArgs("pipe")
		case "quiet":
			args = convertArgs("pipequiet", "--quiet")
		case "json":
			args = convertArgs("pipejson", "--log-format", "json")
		}
		cmd := ptytest.SelfCommand(t, mainEnv, env, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
		err := cmd.Wait()
		timer.Stop()
		if err != nil {
			t.Fatalf("%s: %v\n%s", mode, err, stderr.String())
		}
		if !stdoutRe.MatchString(stdout.String()) {
			t.Errorf("%s: stdout %q, want only the pushed reference", mode, stdout.String())
		}
		out := stderr.String()
		ptytest.CheckPiped(t, mode, out, layerLineRe)
		if mode == "json" {
			n := 0
			for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
				var rec struct {
					Msg      string `json:"msg"`
					Level    string `json:"level"`
					Progress string `json:"progress"`
					Done     *int64 `json:"done_bytes"`
				}
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Errorf("stderr line %d is not JSON (%v): %q", i+1, err, line)
					continue
				}
				if rec.Msg == "" || rec.Level == "" {
					t.Errorf("stderr line %d lacks msg or level: %q", i+1, line)
				}
				if rec.Progress != "" && rec.Done != nil {
					n++
				}
			}
			if n < 2 {
				t.Errorf("%d JSON progress records, want >= 2:\n%s", n, out)
			}
		}
	}
}
