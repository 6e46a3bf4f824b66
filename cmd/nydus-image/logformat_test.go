package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// checkJSONLines checks that every line of out is one JSON object with
// time, level and msg, and that at least minCount of them carry key.
func checkJSONLines(t *testing.T, out, key string, minCount int) {
	t.Helper()
	n := 0
	for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("line %d is not JSON (%v): %q", i+1, err, line)
			continue
		}
		for _, k := range []string{"time", "level", "msg"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("line %d lacks %q: %q", i+1, k, line)
			}
		}
		if _, ok := rec[key]; ok {
			n++
		}
	}
	if n < minCount {
		t.Errorf("%d records carry %q, want >= %d:\n%s", n, key, minCount, out)
	}
}
