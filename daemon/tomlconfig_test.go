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

// TestTOMLConfigMounts: an image mounts with a v2 configuration file in
// TOML, as upstream nydusd accepts it, and reads back.
func TestTOMLConfigMounts(t *testing.T) {
	testutil.RequireFUSE(t)
	work := t.TempDir()
	im := buildImage(t, work, "toml", 4)
	path := filepath.Join(work, "nydusd-config.toml")
	doc := fmt.Sprintf("version = 2\n\n[backend]\ntype = \"localfs\"\n\n[backend.localfs]\ndir = %q\n\n[cache]\ntype = \"filecache\"\n\n[cache.filecache]\nwork_dir = %q\n\n[rafs]\nmode = \"direct\"\nvalidate = true\n",
		work, filepath.Join(work, "cache"))
	testutil.Must(t, os.WriteFile(path, []byte(doc), 0o600))
	cfg, err := config.Load(path)
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{})
	testutil.Must(t, d.AddMount("/", im.boot, cfg))
	mnt := t.TempDir()
	testutil.Must(t, d.Start(mnt, nil, 2))
	defer d.Stop()
	for name, want := range im.files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
