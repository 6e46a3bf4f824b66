package main

import (
	"slices"
	"testing"
)

// TestPrefetchList: --prefetch-files holds image paths (upstream), one
// value with several separators as nydus-snapshotter passes it.
func TestPrefetchList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  \n", nil},
		{"/data/a", []string{"/data/a"}},
		{"/a /b\n/c,/d\t/e", []string{"/a", "/b", "/c", "/d", "/e"}},
	} {
		got, err := prefetchList(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("prefetchList(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := prefetchList("/a relative/b"); err == nil {
		t.Error("a relative path was accepted")
	}
}
