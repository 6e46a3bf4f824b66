package ptytest

import (
	"regexp"
	"strings"
	"testing"
)

// CheckPiped checks what a command that shows progress wrote to stderr
// when stderr was a pipe, run in log mode "text", "quiet" or "json": no
// bar and no terminal escape in any mode; in "text" at least two lines
// matching lines (progress kept coming); in "quiet" no progress= field.
// The JSON records are the caller's to check.
func CheckPiped(t *testing.T, mode, out string, lines *regexp.Regexp) {
	t.Helper()
	if strings.Contains(out, "[=") || strings.Contains(out, "\x1b[") {
		t.Errorf("%s: a bar drawn on a pipe:\n%s", mode, out)
	}
	switch mode {
	case "text":
		if n := len(lines.FindAllString(out, -1)); n < 2 {
			t.Errorf("%d progress lines matching %s, want periodic ones (>= 2):\n%s", n, lines, out)
		}
	case "quiet":
		if strings.Contains(out, "progress=") {
			t.Errorf("--quiet logged progress:\n%s", out)
		}
	}
}
