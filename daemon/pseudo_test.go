package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/internal/testutil"
)

// mounted reports whether dir is a mountpoint in /proc/self/mountinfo.
func mounted(t *testing.T, dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	testutil.Must(t, err)
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
	testutil.RequireFUSE(t)
	work := t.TempDir()
	a := buildImage(t, work, "a", 3)
	b := buildImage(t, work, "b", 40)
	cfg, err := config.Parse([]byte(localConfig(t, work, filepath.Join(work, "cache"), false)))
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{ID: "early", URing: daemon.URingOff})
	testutil.Must(t, d.AddMount("/a", a.boot, cfg))
	mnt := t.TempDir()

	// Another process reads a/f00 as soon as the mount shows, while Start
	// may still run. (Not this one: an open of a FUSE file before go-fuse's
	// poll workaround ran blocks in epoll_ctl, which the Go runtime does not
	// see as a syscall, and the garbage collector then waits for it while
	// the server waits for the collector.)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestHelperEarlyRead$", "-test.count=1")
	child.Env = append(os.Environ(), "EARLY_READ_MNT="+mnt)
	var childOut bytes.Buffer
	child.Stdout, child.Stderr = &childOut, &childOut
	testutil.Must(t, child.Start())
	testutil.Must(t, d.Start(mnt, nil, 2))
	defer d.Stop()
	if err := child.Wait(); err != nil {
		t.Fatalf("reading a/f00 as the mount appeared: %v: %s", err, childOut.String())
	}
	if !strings.Contains(childOut.String(), "EARLY "+strings.TrimSpace(string(a.files["f00"][:9]))) {
		t.Fatalf("early read printed %q", childOut.String())
	}

	nlink := func() uint64 {
		var st syscall.Stat_t
		testutil.Must(t, syscall.Stat(mnt, &st))
		return st.Nlink
	}
	if n := nlink(); n != 3 {
		t.Fatalf("pseudo root nlink %d with one image, want 3", n)
	}
	testutil.Must(t, d.AddMount("/b", b.boot, cfg))
	if n := nlink(); n != 4 {
		t.Fatalf("pseudo root nlink %d with two images, want 4", n)
	}

	walk := func() int {
		n := 0
		err := filepath.Walk(filepath.Join(mnt, "b"), func(p string, fi os.FileInfo, err error) error {
			n++
			return err
		})
		testutil.Must(t, err)
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
	testutil.Must(t, d.RemoveMount("/a"))
	if n := nlink(); n != 3 {
		t.Fatalf("pseudo root nlink %d after an unmount, want 3", n)
	}
	if _, err := os.Stat(filepath.Join(mnt, "a")); !os.IsNotExist(err) {
		t.Fatalf("a after unmount: %v", err)
	}
}

// TestHelperEarlyRead runs in a child of TestPseudoMountsServedFromTheStart:
// it waits (20 s at most) for the FUSE mount at $EARLY_READ_MNT to show and
// reads a/f00 at once.
func TestHelperEarlyRead(t *testing.T) {
	mnt := os.Getenv("EARLY_READ_MNT")
	if mnt == "" {
		t.Skip("helper of TestPseudoMountsServedFromTheStart, run by it")
	}
	deadline := time.Now().Add(20 * time.Second)
	for !mounted(t, mnt) {
		if time.Now().After(deadline) {
			t.Fatal("the mount did not show in 20 s")
		}
	}
	got, err := os.ReadFile(filepath.Join(mnt, "a", "f00"))
	testutil.Must(t, err)
	fmt.Printf("EARLY %s\n", got[:9])
}
