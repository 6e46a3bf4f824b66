package testutil

import (
	"io"
	"os"
	"testing"
)

// CaptureStderr runs fn (a command's main, run in-process) with os.Stderr
// going to a pipe and returns fn's result and what it wrote there.
func CaptureStderr(tb testing.TB, fn func() int) (int, string) {
	tb.Helper()
	code, b := capture(tb, &os.Stderr, fn)
	return code, string(b)
}

// CaptureStdout is CaptureStderr for os.Stdout.
func CaptureStdout(tb testing.TB, fn func() int) (int, []byte) {
	tb.Helper()
	return capture(tb, &os.Stdout, fn)
}

func capture(tb testing.TB, f **os.File, fn func() int) (int, []byte) {
	tb.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	old := *f
	*f = w
	out := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); out <- b }()
	code := func() int {
		defer func() { *f = old; w.Close() }()
		return fn()
	}()
	return code, <-out
}
