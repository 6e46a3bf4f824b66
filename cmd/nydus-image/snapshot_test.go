package main

import (
	"io"
	"os"
	"testing"

	"github.com/gonydus/nydus/internal/statcmp"
)

// The tests' tree descriptions and comparisons are internal/statcmp's:
// every stat field (type, permission bits, owner, size, nlink, rdev, mtime,
// symlink target, xattrs, content, hardlink groups) of every path.

// snapshotDir describes every path under root ("." is root itself).
func snapshotDir(t testing.TB, root string, skip func(string) bool) statcmp.Snapshot {
	t.Helper()
	var opts []statcmp.DirOption
	if skip != nil {
		opts = append(opts, statcmp.Skip(skip))
	}
	s, err := statcmp.Dir(root, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshotTar describes the tree a tar stream extracts to.
func snapshotTar(t testing.TB, r io.Reader) statcmp.Snapshot {
	t.Helper()
	s, err := statcmp.Tar(r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// compareSnapshots fails the test on any difference in any field. A
// directory's size is its file system's own (source tree, tar, EROFS
// differ), so it is left out here; mount-vs-mount checks compare it.
func compareSnapshots(t testing.TB, want, got statcmp.Snapshot) {
	t.Helper()
	statcmp.Check(t, "source", want, "image", got, statcmp.IgnoreDirSize())
}

// snapshotFIFO snapshots the tar a writer will stream into the FIFO at
// path; the result arrives when the writer closes it (nil if it cannot be
// opened or read).
func snapshotFIFO(t testing.TB, path string) <-chan statcmp.Snapshot {
	done := make(chan statcmp.Snapshot, 1)
	go func() {
		f, err := os.Open(path)
		if err != nil {
			done <- nil
			return
		}
		defer f.Close()
		s, err := statcmp.Tar(f)
		if err != nil {
			t.Errorf("tar from %s: %v", path, err)
			_, _ = io.Copy(io.Discard, f)
		}
		done <- s
	}()
	return done
}
