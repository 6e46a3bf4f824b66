package daemon_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/internal/testutil"
)

// TestLargeBootstrapOnDemand mounts an image whose bootstrap is above the
// daemon's in-memory limit (1 MiB), so that inodes, directories and the
// chunk tables (built on the first read) come from the file, and reads
// every file back.
func TestLargeBootstrapOnDemand(t *testing.T) {
	testutil.RequireFUSE(t)
	work := t.TempDir()
	files := map[string][]byte{}
	for i := range 8000 {
		files[fmt.Sprintf("file-%05d", i)] = []byte(fmt.Sprintf("content of file %d\n", i))
	}
	im := buildImageOf(t, work, "big", files)
	st, err := os.Stat(im.boot)
	testutil.Must(t, err)
	if st.Size() <= 1<<20 {
		t.Fatalf("bootstrap of %d bytes does not exceed the 1 MiB in-memory limit", st.Size())
	}
	cfg, err := config.Parse([]byte(localConfig(t, work, filepath.Join(work, "cache"), true)))
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{})
	testutil.Must(t, d.AddMount("/", im.boot, cfg))
	mnt := t.TempDir()
	testutil.Must(t, d.Start(mnt, nil, 4))
	defer d.Stop()
	ents, err := os.ReadDir(mnt)
	testutil.Must(t, err)
	if len(ents) != len(files) {
		t.Fatalf("%d entries, want %d", len(ents), len(files))
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
}
