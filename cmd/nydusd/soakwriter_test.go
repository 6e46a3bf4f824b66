package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
)

// soakWriterEnv runs TestSoakWriter as the writer process of
// TestFailoverSoakWritable: "root|stopfile|resultfile|heldlower|sha256".
const soakWriterEnv = "GONYDUS_SOAK_WRITER"

// soakCopyUps is how many lower files (cu/NN, not read by the readers)
// the writer copies up by appending to them; the odd ones it then removes,
// which leaves whiteouts.
const soakCopyUps = 40

func copyUpName(i int) string { return fmt.Sprintf("cu/%02d", i) }

func copyUpLower(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("lower %02d\n", i)), 500+i) }

func copyUpAppend(i int) []byte { return []byte(fmt.Sprintf("appended %02d\n", i)) }

// heldCopyUp is a lower file the writer holds open read-only and then
// read-write (a copy-up while a cached lower handle is open, so the
// read-write handle is a cached one, not FUSE passthrough: its writes
// reach the daemon).
const heldCopyUp = "cu/held"

func heldCopyUpLower() []byte { return copyUpLower(99) }

// heldCopyUpWant is heldCopyUp once records 0 to n-1 were written through
// the read-write handle.
func heldCopyUpWant(n int) []byte {
	b := heldCopyUpLower()
	for i := range n {
		rec := heldRecord(i)
		off := i * len(rec)
		if off+len(rec) > len(b) {
			b = append(b, make([]byte, off+len(rec)-len(b))...)
		}
		copy(b[off:], rec)
	}
	return b
}

// soakFile is the content of the writer's n-th file.
func soakFile(n int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("file %d\n", n)), 1+n%300) }

// heldRecord is the n-th record the writer writes through its held file.
func heldRecord(n int) []byte { return []byte(fmt.Sprintf("%015d\n", n)) }

// writerResult is what the writer process reports.
type writerResult struct {
	Files, Records, CopyUps, Removed int
	Errors                           int
	FirstError                       string
	MaxWait                          time.Duration
}

// TestSoakWriter is the writer process of TestFailoverSoakWritable; run by
// itself it skips. Until the stop file appears, every 20 ms it creates
// w/N, writes record N through one held O_RDWR descriptor (and reads it
// back through it, out of the page cache), rereads a lower file through
// another held descriptor, and now and then copies up a cu/ file by
// appending to it and removes the odd ones. Each file written is read
// back through the mount at the end.
func TestSoakWriter(t *testing.T) {
	spec := os.Getenv(soakWriterEnv)
	if spec == "" {
		t.Skip("the writer process that TestFailoverSoakWritable starts; nothing to do alone")
	}
	p := strings.Split(spec, "|")
	root, stop, result, heldLower, lowerSum := p[0], p[1], p[2], p[3], p[4]
	var res writerResult
	fail := func(err error) {
		res.Errors++
		if res.FirstError == "" {
			res.FirstError = err.Error()
		}
	}
	timed := func(fn func() error) error {
		t0 := time.Now()
		err := fn()
		res.MaxWait = max(res.MaxWait, time.Since(t0))
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, "w"), 0o755); err != nil {
		t.Fatal(err)
	}
	held, err := os.OpenFile(filepath.Join(root, "w", "held"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	lower, err := os.Open(filepath.Join(root, heldLower))
	if err != nil {
		t.Fatal(err)
	}
	cuRO, err := os.Open(filepath.Join(root, heldCopyUp))
	if err != nil {
		t.Fatal(err)
	}
	cuRW, err := os.OpenFile(filepath.Join(root, heldCopyUp), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	for n := 0; ; n++ {
		if _, err := os.Stat(stop); err == nil {
			break
		}
		if err := timed(func() error {
			return os.WriteFile(filepath.Join(root, "w", strconv.Itoa(n)), soakFile(n), 0o644)
		}); err != nil {
			fail(err)
		} else {
			res.Files = n + 1
		}
		rec := heldRecord(n)
		if err := timed(func() error {
			for _, f := range []*os.File{held, cuRW} {
				if _, err := f.WriteAt(rec, int64(n*len(rec))); err != nil {
					return fmt.Errorf("%s: write %d: %w", f.Name(), n, err)
				}
				_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
				got := make([]byte, len(rec))
				if _, err := f.ReadAt(got, int64(n*len(rec))); err != nil || !bytes.Equal(got, rec) {
					return fmt.Errorf("%s: read %d: %q %w", f.Name(), n, got, err)
				}
			}
			return nil
		}); err != nil {
			fail(err)
		} else {
			res.Records = n + 1
		}
		if n%10 == 0 {
			if err := timed(func() error { return verifyFd(lower, lowerSum, buf) }); err != nil {
				fail(fmt.Errorf("held lower %s: %w", heldLower, err))
			}
		}
		if i := n / 5; n%5 == 0 && i < soakCopyUps {
			if err := timed(func() error { return copyUp(root, i) }); err != nil {
				fail(err)
			} else {
				res.CopyUps++
				if i%2 == 1 {
					res.Removed++
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for n := range res.Files {
		got, err := os.ReadFile(filepath.Join(root, "w", strconv.Itoa(n)))
		if err != nil || !bytes.Equal(got, soakFile(n)) {
			fail(fmt.Errorf("w/%d reads back %d bytes, %w", n, len(got), err))
		}
	}
	if got, err := os.ReadFile(filepath.Join(root, heldCopyUp)); err != nil || !bytes.Equal(got, heldCopyUpWant(res.Records)) {
		fail(fmt.Errorf("%s reads back %d bytes, %w", heldCopyUp, len(got), err))
	}
	if err := errors.Join(held.Close(), lower.Close(), cuRO.Close(), cuRW.Close()); err != nil {
		fail(err)
	}
	b, _ := json.Marshal(res)
	if err := os.WriteFile(result, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyUp appends to cu/i (a copy-up), checks it, and removes it when i is
// odd.
func copyUp(root string, i int) error {
	p := filepath.Join(root, copyUpName(i))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(copyUpAppend(i))
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("append %s: %w", p, err)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, append(copyUpLower(i), copyUpAppend(i)...)) {
		return fmt.Errorf("%s after the append: %d bytes, %w", p, len(got), err)
	}
	if i%2 == 1 {
		if err := os.Remove(p); err != nil {
			return err
		}
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s after its removal: %w", p, err)
		}
	}
	return nil
}

// verifyFd reads all of f from offset 0 out of the page cache and checks
// its sha256.
func verifyFd(f *os.File, want string, buf []byte) error {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, 1<<62), buf); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("sha256 %s, want %s", got, want)
	}
	return nil
}

// withOverlay returns a copy of the configuration file cfg with an
// overlay section of upper and work dirs it makes.
func withOverlay(t *testing.T, cfg, upper, work string) string {
	t.Helper()
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m["overlay"] = map[string]string{"upper_dir": upper, "work_dir": work}
	b, _ = json.Marshal(m)
	p := filepath.Join(t.TempDir(), "nydusd-overlay.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkSoakWriter waits for the writer (the stop file is there), checks
// its report, and then that the upper dir holds everything it wrote.
func checkSoakWriter(t *testing.T, cmd *exec.Cmd, out *testutil.Buffer, result, upper string) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("writer: %v\n%s", err, out.String())
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("the writer still runs 5 min after the stop")
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatalf("writer reported nothing: %v\n%s", err, out.String())
	}
	var res writerResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	t.Logf("writer: %d files, %d records through each of two held descriptors, %d copy-ups, %d removed, longest wait %v, %d errors",
		res.Files, res.Records, res.CopyUps, res.Removed, res.MaxWait, res.Errors)
	if res.Errors > 0 {
		t.Errorf("writer: %d errors, first: %s", res.Errors, res.FirstError)
	}
	if res.MaxWait > 2*time.Second {
		t.Errorf("writer waited %v for one operation (limit 2 s)", res.MaxWait)
	}
	if res.Files < 10 || res.CopyUps < 2 {
		t.Errorf("writer did too little: %+v", res)
	}
	for n := range res.Files {
		got, err := os.ReadFile(filepath.Join(upper, "w", strconv.Itoa(n)))
		if err != nil || !bytes.Equal(got, soakFile(n)) {
			t.Fatalf("upper w/%d: %d bytes, %v", n, len(got), err)
		}
	}
	held, err := os.ReadFile(filepath.Join(upper, "w", "held"))
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for n := range res.Records {
		want = append(want, heldRecord(n)...)
	}
	if !bytes.Equal(held, want) {
		t.Errorf("upper w/held: %d bytes, want the writer's %d records (%d bytes)", len(held), res.Records, len(want))
	}
	if got, err := os.ReadFile(filepath.Join(upper, heldCopyUp)); err != nil || !bytes.Equal(got, heldCopyUpWant(res.Records)) {
		t.Errorf("upper %s: %d bytes, %v", heldCopyUp, len(got), err)
	}
	for i := range res.CopyUps {
		p := filepath.Join(upper, copyUpName(i))
		if i%2 == 1 {
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
				t.Errorf("upper %s: no whiteout (%v, mode %o)", copyUpName(i), err, st.Mode)
			}
			continue
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, append(copyUpLower(i), copyUpAppend(i)...)) {
			t.Errorf("upper %s: %d bytes, %v", copyUpName(i), len(got), err)
		}
	}
}
