package main

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/cmd/internal/cli"
	"github.com/gonydus/nydus/internal/testutil"
)

// TestLogRotation: --log-file with --log-rotation-size 1 keeps each file
// at most 1 MiB, rotates to .1 … .5, drops older files and never splits a
// record.
func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "nydusd") // ".log" is appended
	prev := slog.Default()
	defer slog.SetDefault(prev)
	closeLog, err := setupLog("info", base, "1", new(slog.LevelVar))
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 1000)
	const records = 8000 // about 8 MB: more than 1 + cli.LogBackups files
	for i := range records {
		slog.Info("record", "n", i, "pad", pad)
	}
	closeLog()
	file := base + ".log"
	names := []string{file}
	for i := 1; i <= cli.LogBackups; i++ {
		names = append(names, file+"."+strconv.Itoa(i))
	}
	last := -1
	for i := len(names) - 1; i >= 0; i-- {
		b, err := os.ReadFile(names[i])
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(names[i]), err)
		}
		if len(b) > 1<<20 {
			t.Errorf("%s holds %d bytes, more than 1 MiB", filepath.Base(names[i]), len(b))
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		for _, l := range lines {
			if !strings.Contains(l, "msg=record") || !strings.HasSuffix(l, pad) {
				t.Fatalf("%s: split or foreign record %.80q", filepath.Base(names[i]), l)
			}
			n, err := recordNumber(l)
			if err != nil {
				t.Fatal(err)
			}
			if n != last+1 && last != -1 {
				t.Fatalf("%s: record %d follows %d", filepath.Base(names[i]), n, last)
			}
			last = n
		}
	}
	if last != records-1 {
		t.Errorf("last record %d, want %d", last, records-1)
	}
	if _, err := os.Stat(file + "." + strconv.Itoa(cli.LogBackups+1)); err == nil {
		t.Errorf("more than %d rotated files kept", cli.LogBackups)
	}
}

func TestLogRotationSizeInvalid(t *testing.T) {
	for _, v := range []string{"-1", "x", "1.5"} {
		if _, err := setupLog("info", "", v, new(slog.LevelVar)); err == nil {
			t.Errorf("--log-rotation-size %q accepted", v)
		}
	}
}

// TestLogNoRotation: size 0 never rotates.
func TestLogNoRotation(t *testing.T) {
	file := filepath.Join(t.TempDir(), "logs", "id", "d.log") // directories created
	r, err := cli.OpenLogFile(file, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for range 40 {
		if _, err := r.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	if st, err := os.Stat(file); err != nil || st.Size() != 40*64<<10 {
		t.Fatalf("size %v, %v", st, err)
	}
	if _, err := os.Stat(file + ".1"); err == nil {
		t.Error("rotated without a size")
	}
}

// recordNumber returns the n= attribute of a text log record.
func recordNumber(line string) (int, error) {
	_, rest, ok := strings.Cut(line, " n=")
	if !ok {
		return 0, os.ErrNotExist
	}
	rest, _, _ = strings.Cut(rest, " ")
	return strconv.Atoi(rest)
}

// TestLogReopenOnHangup: logrotate renames --log-file and sends SIGHUP;
// nydusd goes on serving and writes its next records to a new file.
func TestLogReopenOnHangup(t *testing.T) {
	testutil.RequireRoot(t, "mounts FUSE")
	testutil.RequireFUSE(t)
	image, nydusd := testBinaries(t)
	src, blobs := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	boot := filepath.Join(t.TempDir(), "image.boot")
	if out, err := exec.Command(image, "create", "-l", "warn", "-B", boot, "-D", blobs, src).CombinedOutput(); err != nil {
		t.Fatalf("create: %v: %s", err, out)
	}
	mnt := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "nydusd.log")
	cmd := exec.Command(nydusd, "--mountpoint", mnt, "--bootstrap", boot, "--localfs-dir", blobs, "--log-file", logPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH) // only if nydusd did not stop
	testutil.CheckReopenOnHangup(t, cmd, testutil.Hangup{Log: logPath, Ready: `msg="nydusd running"`, Reopened: cli.ReopenedMessage, Stopped: "msg=stopping"})
}
