package main

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/gonydus/nydus/internal/progress"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
)

// trackedWriter counts the file data a directory source sends to the
// builder.
type trackedWriter struct {
	w builder.FileWriter
	t *progress.Tracker
}

func (tw trackedWriter) WriteFile(r io.Reader, size int64) ([]*layout.ChunkInfo, error) {
	return tw.w.WriteFile(tw.t.Reader(r), size)
}

// endTracker ends t complete, or aborted when *errp holds an error.
func endTracker(t *progress.Tracker, errp *error) {
	if *errp != nil {
		t.Abort()
		return
	}
	t.Done()
}

// regularSize is f's size when it is a regular file, else 0 (unknown:
// a FIFO or a pipe on stdin).
func regularSize(f *os.File) int64 {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0
	}
	return st.Size()
}

// dirDataSize sums the sizes of the regular files under dir: the data a
// directory build reads (a hard-linked file once).
func dirDataSize(dir string) int64 {
	var n int64
	links := map[[2]uint64]bool{}
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if links[key] {
				return nil
			}
			links[key] = true
		}
		n += info.Size()
		return nil
	})
	return n
}
