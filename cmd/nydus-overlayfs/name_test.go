package main

import (
	"slices"
	"testing"
)

func TestWithUserspace(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{[]string{"overlay", "/t", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,dev,suid"},
			[]string{"overlay", "/t", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,dev,suid,nydus.overlay=userspace"}},
		{[]string{"overlay", "/t", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,nydus.overlay=kernel"},
			[]string{"overlay", "/t", "-o", "lowerdir=/l,upperdir=/u,workdir=/w,nydus.overlay=kernel"}},
		// A read-only view: no upperdir, two lowers.
		{[]string{"overlay", "/t", "-o", "lowerdir=/l:/v,dev,suid"}, []string{"overlay", "/t", "-o", "lowerdir=/l:/v,dev,suid"}},
		{[]string{"overlay", "/t", "-o", "lowerdir=/l:/m,upperdir=/u,workdir=/w"}, []string{"overlay", "/t", "-o", "lowerdir=/l:/m,upperdir=/u,workdir=/w"}},
		{[]string{"overlay", "/t"}, []string{"overlay", "/t"}},
	} {
		if got := withUserspace(c.in); !slices.Equal(got, c.want) {
			t.Errorf("withUserspace(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
