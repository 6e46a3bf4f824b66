package backend

import (
	"strings"
	"testing"
)

func FuzzParseChallenge(f *testing.F) {
	f.Add(`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`)
	f.Add(`Basic realm="x"`)
	f.Add(`Bearer realm="a\"b", error="invalid_token"`)
	f.Add(`Bearer realm=https://ghcr.io/token,service=ghcr.io,scope="repository:o/r:pull"`)
	f.Add(`Bearer realm="http://127.0.0.1:5000/token",service="testregistry",scope="repository:app:pull"`)
	f.Fuzz(func(t *testing.T, h string) {
		c, err := parseChallenge(h)
		if err != nil {
			return
		}
		if c.Scheme == "" || c.Scheme != strings.ToLower(c.Scheme) {
			t.Fatalf("scheme %q accepted", c.Scheme)
		}
		for k := range c.Params {
			if k != strings.ToLower(k) {
				t.Fatalf("parameter name %q not lower case", k)
			}
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	f.Add("bytes 0-99/1000")
	f.Add("bytes 5-5/*")
	f.Add("bytes 1000-1999/1064761")
	f.Add("bytes 7-100006/400000")
	f.Fuzz(func(t *testing.T, h string) {
		first, last, total, err := parseContentRange(h)
		if err == nil && (first < 0 || last < first || (total != -1 && total <= last)) {
			t.Fatalf("accepted inconsistent range %d-%d/%d", first, last, total)
		}
	})
}
