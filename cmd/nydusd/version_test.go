package main

import (
	"bytes"
	"regexp"
	"testing"
)

// TestVersionOutput: nydus-snapshotter parses `nydusd --version` with
// `Git Commit:\s*(.+)` and compares the result with the API's git_commit
// (the build's version); without the line it refuses to start when
// daemons are running.
func TestVersionOutput(t *testing.T) {
	var b bytes.Buffer
	printVersion(&b)
	m := regexp.MustCompile(`Git Commit:\s*(.+)`).FindStringSubmatch(b.String())
	if m == nil || m[1] != version {
		t.Fatalf("no Git Commit line with %q in:\n%s", version, b.String())
	}
	if !regexp.MustCompile(`(?m)^Version:\s+` + regexp.QuoteMeta(version) + `$`).MatchString(b.String()) {
		t.Fatalf("no Version line in:\n%s", b.String())
	}
}
