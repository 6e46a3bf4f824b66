package daemon_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/internal/testutil"
)

// TestInodeIndexNeverShared: mounting and unmounting more images than an
// inode index can count never gives a new image the st_ino range of one
// still mounted (it used to wrap after 256 mounts).
func TestInodeIndexNeverShared(t *testing.T) {
	testutil.RequireFUSE(t)
	work := t.TempDir()
	im := buildImage(t, work, "a", 2)
	cfg, err := config.Parse([]byte(localConfig(t, work, filepath.Join(work, "cache"), false)))
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{ID: "ino"})
	mnt := t.TempDir()
	testutil.Must(t, d.Start(mnt, nil, 2))
	defer d.Stop()
	testutil.Must(t, d.AddMount("/keep", im.boot, cfg))
	for range 255 { // /y is then the 257th mount: index 1 again if the index wraps
		testutil.Must(t, d.AddMount("/x", im.boot, cfg))
		testutil.Must(t, d.RemoveMount("/x"))
	}
	testutil.Must(t, d.AddMount("/y", im.boot, cfg))
	ino := func(p string) uint64 {
		st, err := os.Stat(filepath.Join(mnt, p))
		testutil.Must(t, err)
		return st.Sys().(*syscall.Stat_t).Ino
	}
	keep, y := ino("keep/f00"), ino("y/f00")
	if keep>>56 == y>>56 || keep == y {
		t.Fatalf("after 255 mount cycles, /keep/f00 has st_ino %#x and /y/f00 %#x: the same image index", keep, y)
	}
	// The index space is bounded: the 256th image at once is refused.
	n := 2
	for ; n < 300; n++ {
		if err := d.AddMount("/m"+string(rune('a'+n/26))+string(rune('a'+n%26)), im.boot, cfg); err != nil {
			break
		}
	}
	if n != 255 {
		t.Fatalf("the daemon took %d images at once, want 255", n)
	}
}
