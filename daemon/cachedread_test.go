package daemon_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/internal/testutil"
)

// TestCachedReadsOneReadPerSmallFile reads every file of an image whose
// chunks are all cached, 8 KiB at a time as many programs do. The kernel's
// first READ of such a read is a 32 KiB readahead window; the rest of each
// file (up to 128 KiB) is pushed into the page cache with that READ's
// answer, so each file costs one READ. The bytes, read straight from the
// cache file across 16 KiB chunk boundaries and pushed, must be the file's.
func TestCachedReadsOneReadPerSmallFile(t *testing.T) {
	for _, threads := range []int{4, 1} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) { testCachedReads(t, threads) })
	}
}

// testCachedReads: with one request at a time (--thread-num 1) nothing is
// pushed, since a push can wait on a READ that only another handler could
// answer; the bytes are still right.
func testCachedReads(t *testing.T, threads int) {
	testutil.RequireFUSE(t)
	work := t.TempDir()
	im := buildImage(t, work, "tail", 24) // 20-48 KiB files in 16 KiB chunks
	doc := fmt.Sprintf(`{"device":{"backend":{"type":"localfs","config":{"dir":%q}},"cache":{"type":"blobcache","config":{"work_dir":%q}}},
		"mode":"direct","fs_prefetch":{"enable":true,"threads_count":2,"prefetch_all":true}}`, work, filepath.Join(work, "cache"))
	cfg, err := config.Parse([]byte(doc))
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{URing: daemon.URingOff}) // pushes are for /dev/fuse
	testutil.Must(t, d.AddMount("/", im.boot, cfg))
	defer d.Stop()
	m, err := d.Mount("/")
	testutil.Must(t, err)
	testutil.Must(t, m.WaitPrefetch())
	mnt := t.TempDir()
	testutil.Must(t, d.Start(mnt, nil, threads))

	buf := make([]byte, 8<<10)
	for name, want := range im.files {
		f, err := os.Open(filepath.Join(mnt, name))
		testutil.Must(t, err)
		var got bytes.Buffer
		_, err = io.CopyBuffer(onlyWriter{&got}, onlyReader{f}, buf)
		f.Close()
		if err != nil || !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("%s: %d bytes (%v), want %d", name, got.Len(), err, len(want))
		}
	}
	var big int
	for _, want := range im.files {
		if len(want) > 32<<10 {
			big++
		}
	}
	pushed, failed := m.FS.Stats().Pushed()
	if threads == 1 {
		if pushed != 0 {
			t.Fatalf("a single-threaded daemon pushed %d bytes", pushed)
		}
		return
	}
	for _, fs := range m.FS.Stats().Files() {
		if fs.ReadCount != 1 {
			t.Errorf("nid %d: %d READs, want 1 (pushed %d bytes, %d pushes failed)", fs.Nid, fs.ReadCount, pushed, failed)
		}
	}
	t.Logf("%d files (%d over 32 KiB): %d tail bytes pushed, %d pushes failed", len(im.files), big, pushed, failed)
	if failed != 0 {
		t.Fatalf("%d tail pushes failed", failed)
	}
}

// onlyReader and onlyWriter hide ReadFrom/WriteTo so io.CopyBuffer reads
// in the buffer's size.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// TestCachedLargeReadsFromCacheFile reads a 3 MiB file whose chunks are
// all cached: the kernel asks in READs of up to 1 MiB, each answered by
// splicing one run of the cache file (or, under 128 KiB, a pread of it),
// so the storage chain serves none of them, and the bytes are the file's.
func TestCachedLargeReadsFromCacheFile(t *testing.T) {
	testutil.RequireFUSE(t)
	work := t.TempDir()
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i/4096) ^ byte(i)
	}
	im := buildImageOf(t, work, "big", map[string][]byte{"big": big, "small": []byte("small file\n")})
	doc := fmt.Sprintf(`{"device":{"backend":{"type":"localfs","config":{"dir":%q}},"cache":{"type":"blobcache","config":{"work_dir":%q}}},
		"mode":"direct","fs_prefetch":{"enable":true,"threads_count":2,"prefetch_all":true}}`, work, filepath.Join(work, "cache"))
	cfg, err := config.Parse([]byte(doc))
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{})
	testutil.Must(t, d.AddMount("/", im.boot, cfg))
	defer d.Stop()
	m, err := d.Mount("/")
	testutil.Must(t, err)
	testutil.Must(t, m.WaitPrefetch())
	before := m.Storage.Metrics().Snapshot().ReadLatency.Count
	mnt := t.TempDir()
	testutil.Must(t, d.Start(mnt, nil, 4))
	for name, want := range im.files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes (%v), want %d", name, len(got), err, len(want))
		}
	}
	if after := m.Storage.Metrics().Snapshot().ReadLatency.Count; after != before {
		t.Fatalf("%d reads went through the storage chain; want all from the cache file", after-before)
	}
}
