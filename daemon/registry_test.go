package daemon_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/internal/testregistry"
	"github.com/gonydus/nydus/internal/testutil"
)

// TestRegistryBackedMount serves an image whose blob lives only in a
// registry: files read lazily equal the source, and reading one file
// fetches only that file's bytes.
func TestRegistryBackedMount(t *testing.T) {
	testutil.RequireFUSE(t)
	work := t.TempDir()
	im := buildImage(t, work, "r", 8)
	blob, err := os.ReadFile(im.blobPath)
	testutil.Must(t, err)
	reg := testregistry.Start(t)
	reg.Push(t, "app", blob)
	testutil.Must(t, os.Remove(im.blobPath)) // only the registry has it now
	host := reg.Host
	cfg, err := config.Parse([]byte(fmt.Sprintf(`{"device":{"backend":{"type":"registry","config":{"scheme":"http","host":%q,"repo":"app","timeout":5,"retry_limit":2}},
		"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct","digest_validate":true,"amplify_io":0}`, host, filepath.Join(work, "cache"))))
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{})
	testutil.Must(t, d.AddMount("/", im.boot, cfg))
	mnt := t.TempDir()
	testutil.Must(t, d.Start(mnt, nil, 4))
	defer d.Stop()

	got, err := os.ReadFile(filepath.Join(mnt, "f03"))
	testutil.Must(t, err)
	if !bytes.Equal(got, im.files["f03"]) {
		t.Fatal("f03 differs")
	}
	m, err := d.Mount("/")
	testutil.Must(t, err)
	nid, _ := m.Image.LookupPath("f03")
	chunks, _ := m.Image.Chunks(nid)
	var want int64
	for _, c := range chunks {
		want += int64(c.Info.CompressedSize)
	}
	t.Logf("f03: %d chunks, %d compressed bytes; registry served %d GETs, %d bytes", len(chunks), want, reg.BlobReads(), reg.BlobBytes())
	if reg.BlobBytes() != want {
		t.Fatalf("registry sent %d bytes for a file whose chunks hold %d", reg.BlobBytes(), want)
	}
	for name, data := range im.files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Drop the page cache: re-reads reach nydusd, which must serve them
	// from its blob cache.
	unix.Sync()
	testutil.Must(t, os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0o200))
	before := reg.BlobReads()
	for name := range im.files {
		if _, err := os.ReadFile(filepath.Join(mnt, name)); err != nil {
			t.Fatal(err)
		}
	}
	if reg.BlobReads() != before {
		t.Fatalf("re-reading cached files hit the registry %d times", reg.BlobReads()-before)
	}
}
