package logrusbridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

// TestInstall sends logrus records through a JSON slog handler: fields
// become attributes (errors as their text), levels map, records below the
// handler's level are dropped, and nothing is written in logrus's format.
func TestInstall(t *testing.T) {
	var out bytes.Buffer
	h := slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo})
	l := logrus.New()
	Install(l, h)
	if l.GetLevel() != logrus.InfoLevel {
		t.Errorf("logrus level %v, want info (the handler's)", l.GetLevel())
	}
	l.WithField("b", 2).WithField("a", "x").WithError(errors.New("boom")).Warn("worker failed")
	l.Debug("hidden")
	l.WithField("n", 1).Info("hello")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("not JSON: %v: %q", err, lines[0])
	}
	if rec["level"] != "WARN" || rec["msg"] != "worker failed" || rec["error"] != "boom" || rec["a"] != "x" || rec["b"] != float64(2) {
		t.Errorf("record %v", rec)
	}
	if !strings.Contains(lines[1], `"level":"INFO","msg":"hello","n":1`) {
		t.Errorf("record %q", lines[1])
	}
	if Level(logrus.TraceLevel) >= slog.LevelDebug || Level(logrus.FatalLevel) <= slog.LevelError {
		t.Error("trace must map below debug and fatal above error")
	}
}
