package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewLog checks the one handler a binary sets up: JSON records that
// parse line by line, the level filter, a log file (with ".log" added to
// a bare name), stderr redirected while a progress display draws, and
// refused formats and levels.
func TestNewLog(t *testing.T) {
	var stderr bytes.Buffer
	l, err := NewLog(WithLogLevel("warn"), WithLogFormat("json"), WithLogStderr(&stderr))
	if err != nil {
		t.Fatal(err)
	}
	l.Logger().Info("dropped")
	l.Logger().Warn("kept", "n", 1)
	var above bytes.Buffer
	restore := l.RedirectStderr(&above)
	l.Logger().Error("above bars")
	restore()
	l.Logger().Error("back")
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stderr: %q", stderr.String())
	}
	for _, line := range append(lines, strings.TrimSpace(above.String())) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not JSON: %v: %q", err, line)
		}
		if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("record %q lacks time, level or msg", line)
		}
	}
	if !strings.Contains(lines[0], `"msg":"kept","n":1`) || !strings.Contains(above.String(), "above bars") || !strings.Contains(lines[1], "back") {
		t.Errorf("stderr %q, redirected %q", stderr.String(), above.String())
	}

	dir := t.TempDir()
	stderr.Reset()
	f, err := NewLog(WithLogFile(filepath.Join(dir, "build"), true), WithLogStderr(&stderr))
	if err != nil {
		t.Fatal(err)
	}
	f.RedirectStderr(&above)() // a log file is not the terminal: no redirect
	f.Logger().Info("to the file")
	f.Close()
	b, err := os.ReadFile(filepath.Join(dir, "build.log"))
	if err != nil || !strings.Contains(string(b), `level=INFO msg="to the file"`) || stderr.Len() != 0 {
		t.Errorf("log file %q (%v), stderr %q", b, err, stderr.String())
	}

	if _, err := NewLog(WithLogFormat("xml")); err == nil {
		t.Error("--log-format xml accepted")
	}
	if _, err := NewLog(WithLogLevel("loud")); err == nil {
		t.Error("--log-level loud accepted")
	}
}
