package storage_test

import (
	"errors"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
)

// mountTinyTmpfs mounts a 256 KiB tmpfs and returns its path.
func mountTinyTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			testutil.Missing(t, "CAP_SYS_ADMIN to mount a tmpfs: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// TestFullDiskServesUncached reads more data than the cache file system
// holds. Policy: a chunk that cannot be written is still returned (it was
// verified from the backend) but is not marked ready; the failure is
// counted and logged once. The cache stays valid.
func TestFullDiskServesUncached(t *testing.T) {
	work := mountTinyTmpfs(t)
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 2<<20) // 2 MiB uncompressed
	r := openCounting(t, tb.path)
	cf := openCache(t, work, tb)
	b := newBlob(t, tb, r, storage.WithCache(cf), storage.WithAmplify(0))
	readAll(t, b, tb)
	if err := cf.Flush(); err != nil {
		t.Fatal(err)
	}
	m := b.Metrics().Snapshot()
	st := cf.Stats()
	t.Logf("cache holds %d of %d chunks; %d writes failed", st.Ready, st.Chunks, m.CacheWriteErrors)
	if m.CacheWriteErrors == 0 || st.Ready == st.Chunks {
		t.Fatalf("2 MiB fit into a 256 KiB tmpfs? %+v", st)
	}

	// The error the cache reports is ENOSPC.
	var missing *layout.ChunkInfo
	for _, c := range tb.chunks {
		if !cf.Ready(c) {
			missing = c
			break
		}
	}
	if err := cf.Put(missing, tb.want[missing.Index]); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put on a full disk: %v, want ENOSPC", err)
	}
	b.Close()

	// Everything marked ready is intact; a validating chain reads it all.
	cf2 := openCache(t, work, tb)
	for _, c := range tb.chunks {
		if data, ok, err := cf2.Get(c, nil); err != nil {
			t.Fatal(err)
		} else if ok {
			checkChunk(t, tb, c, data)
		}
	}
	b2 := newBlob(t, tb, r, storage.WithCache(cf2), storage.WithValidate(true))
	readAll(t, b2, tb)
	if m := b2.Metrics().Snapshot(); m.CorruptCached != 0 {
		t.Fatalf("%d corrupt chunks in the cache after ENOSPC", m.CorruptCached)
	}
}
