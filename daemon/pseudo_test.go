package daemon_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
)

// mounted reports whether dir is a mountpoint in /proc/self/mountinfo.
func mounted(t *testing.T, dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	must(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 4 && fs[4] == dir {
			return true
		}
	}
	return false
}

// TestPseudoMountsServedFromTheStart: images mounted before Start are
// readable by the first request after the FUSE mount appears (they used to
// be attached to the pseudo root only after it was live, and an early
// lookup got ENOENT); the pseudo root's nlink counts the images; a second
// walk of a pseudo-mounted image costs no FUSE request.
func TestPseudoMountsServedFromTheStart(t *testing.T) {
	requireFUSE(t)
	work := t.TempDir()
	a := buildImage(t, work, "a", 3)
	b := buildImage(t, work, "b", 40)
	cfg, err := config.Parse([]byte(localConfig(t, work, filepath.Join(work, "cache"), false)))
	must(t, err)
	d := daemon.New(daemon.Options{ID: "early", URing: daemon.URingOff})
	must(t, d.AddMount("/a", a.boot, cfg))
	mnt := t.TempDir()

	// Read a/f00 as soon as the mount shows, while Start may still run.
	early := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for !mounted(t, mnt) {
			if time.Now().After(deadline) {
				early <- os.ErrDeadlineExceeded
				return
			}
			time.Sleep(50 * time.Microsecond)
		}
		got, err := os.ReadFile(filepath.Join(mnt, "a", "f00"))
		if err == nil && !bytes.Equal(got, a.files["f00"]) {
			err = os.ErrInvalid
		}
		early <- err
	}()
	must(t, d.Start(mnt, nil, 2))
	defer d.Stop()
	select {
	case err := <-early:
		if err != nil {
			t.Fatalf("reading a/f00 as the mount appeared: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the early read did not end in 30 s")
	}

	nlink := func() uint64 {
		var st syscall.Stat_t
		must(t, syscall.Stat(mnt, &st))
		return st.Nlink
	}
	if n := nlink(); n != 3 {
		t.Fatalf("pseudo root nlink %d with one image, want 3", n)
	}
	must(t, d.AddMount("/b", b.boot, cfg))
	if n := nlink(); n != 4 {
		t.Fatalf("pseudo root nlink %d with two images, want 4", n)
	}

	walk := func() int {
		n := 0
		err := filepath.Walk(filepath.Join(mnt, "b"), func(p string, fi os.FileInfo, err error) error {
			n++
			return err
		})
		must(t, err)
		return n
	}
	counts := func() map[string]uint64 {
		c, _, ok := d.FUSERequests()
		if !ok {
			t.Fatal("no request counters")
		}
		return c
	}
	if n := walk(); n != 41 {
		t.Fatalf("walk of b saw %d paths, want 41", n)
	}
	before := counts()
	walk()
	after := counts()
	var sent uint64
	for k, v := range after {
		if k != "forget" {
			sent += v - before[k]
		}
	}
	_, noOpendir, _ := d.FUSERequests()
	if want := uint64(0); noOpendir && sent > want {
		t.Errorf("second walk of a pseudo-mounted image sent %d requests, want %d (before %v, after %v)", sent, want, before, after)
	}
	must(t, d.RemoveMount("/a"))
	if n := nlink(); n != 3 {
		t.Fatalf("pseudo root nlink %d after an unmount, want 3", n)
	}
	if _, err := os.Stat(filepath.Join(mnt, "a")); !os.IsNotExist(err) {
		t.Fatalf("a after unmount: %v", err)
	}
}
