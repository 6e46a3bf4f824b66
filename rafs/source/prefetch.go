package source

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// ParsePrefetchPatterns reads prefetch patterns, one absolute path per line
// (what nydus-image create reads from stdin with --prefetch-policy fs).
// Blank lines are ignored; paths are cleaned.
func ParsePrefetchPatterns(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if !strings.HasPrefix(f, "/") {
				return nil, fmt.Errorf("source: prefetch pattern %q is not an absolute path", f)
			}
			out = append(out, path.Clean(f))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("source: read prefetch patterns: %w", err)
	}
	return out, nil
}

func cleanPrefetch(ps []string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, path.Clean("/"+p))
	}
	return out
}
