package storage_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/cache"
)

const crashChildEnv = "NYDUS_STORAGE_CRASH_CHILD"

// crashBlob is the blob both the crash test and its child build (the
// builder is deterministic, so both get the same blob id and chunks).
func crashBlob(t testing.TB, dir string) *testBlob {
	return buildBlob(t, dir, 16<<10, layout.CompressZstd, 1<<20, 5000)
}

// TestCrashChild fills a cache slowly until it is killed. It only runs as
// the child of TestKillDuringCacheFill.
func TestCrashChild(t *testing.T) {
	workDir := os.Getenv(crashChildEnv)
	if workDir == "" {
		t.Skip("helper process for TestKillDuringCacheFill")
	}
	// The blob goes into the parent's work dir, which the parent removes:
	// this process is SIGKILLed, so its own t.TempDir would be left behind.
	blobDir := filepath.Join(workDir, "child-blob")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		t.Fatal(err)
	}
	tb := crashBlob(t, blobDir)
	r := openCounting(t, tb.path)
	r.latency = 2 * time.Millisecond
	cf, err := cache.Open(workDir, tb.entry, cache.WithSync(5*time.Millisecond, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	b := newBlob(t, tb, r, storage.WithCache(cf), storage.WithAmplify(0))
	for {
		for _, c := range tb.chunks {
			if _, err := b.ReadChunk(ctxT(t), c, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestKillDuringCacheFill SIGKILLs a process in the middle of filling a
// cache and checks that every chunk marked ready holds verified data.
func TestKillDuringCacheFill(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("this process is the helper child of TestKillDuringCacheFill, not a test run")
	}
	tb := crashBlob(t, t.TempDir())
	work := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+work)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	mapPath := filepath.Join(work, tb.entry.ID()+cache.ChunkMapSuffix)
	deadline := time.Now().Add(20 * time.Second)
	for readyBits(mapPath) < 10 {
		if time.Now().After(deadline) {
			t.Fatal("child did not cache 10 chunks in 20s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	cf := openCache(t, work, tb)
	st := cf.Stats()
	t.Logf("killed with %d of %d chunks ready", st.Ready, st.Chunks)
	if st.Ready == 0 || st.Ready == st.Chunks {
		t.Fatalf("kill was not mid-way: %+v", st)
	}
	// Every ready chunk holds the right bytes.
	for _, c := range tb.chunks {
		data, ok, err := cf.Get(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			checkChunk(t, tb, c, data)
		}
	}
	// And a new chain serves everything, fetching only what was missing.
	r := openCounting(t, tb.path)
	b := newBlob(t, tb, r, storage.WithCache(cf), storage.WithAmplify(0))
	readAll(t, b, tb)
	if got, want := r.requests.Load(), int64(st.Chunks-st.Ready); got > want {
		t.Fatalf("%d backend requests after the crash, want at most %d", got, want)
	}
}

func readyBits(path string) int {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < cache.HeaderSize {
		return 0
	}
	n := 0
	for _, x := range b[cache.HeaderSize:] {
		for ; x != 0; x &= x - 1 {
			n++
		}
	}
	return n
}
