package daemon_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gonydus/nydus/daemon"
	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/internal/fuseuring"
	"github.com/gonydus/nydus/internal/testutil"
)

// needURing turns the fuse module's enable_uring on for the test (back to
// its old value after), or skips saying why.
func needURing(t *testing.T) {
	t.Helper()
	testutil.RequireFUSE(t)
	restore, err := fuseuring.Enable()
	if err != nil {
		testutil.Missing(t, "FUSE over io_uring: %v", err)
	}
	t.Cleanup(func() { restore() })
}

// TestURingServesImage mounts an image with --fuse-io-uring=on, cold and
// with every chunk prefetched, and checks the bytes and that the rings, not
// /dev/fuse, served the lookups and reads. (A localfs backend never waits
// on the network, so reads are answered inline; TestOffload pins when they
// are not.)
func TestURingServesImage(t *testing.T) {
	needURing(t)
	for _, prefetch := range []bool{false, true} {
		t.Run(fmt.Sprintf("prefetched=%v", prefetch), func(t *testing.T) {
			work := t.TempDir()
			im := buildImage(t, work, "ring", 16)
			doc := fmt.Sprintf(`{"device":{"backend":{"type":"localfs","config":{"dir":%q}},"cache":{"type":"blobcache","config":{"work_dir":%q}}},
				"mode":"direct","fs_prefetch":{"enable":%v,"threads_count":2,"prefetch_all":true}}`, work, filepath.Join(work, "cache"), prefetch)
			cfg, err := config.Parse([]byte(doc))
			testutil.Must(t, err)
			d := daemon.New(daemon.Options{URing: daemon.URingOn})
			testutil.Must(t, d.AddMount("/", im.boot, cfg))
			defer d.Stop()
			if prefetch {
				m, err := d.Mount("/")
				testutil.Must(t, err)
				testutil.Must(t, m.WaitPrefetch())
			}
			mnt := t.TempDir()
			testutil.Must(t, d.Start(mnt, nil, 4))
			for name, want := range im.files {
				got, err := os.ReadFile(filepath.Join(mnt, name))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("%s: %d bytes, %v; want %d", name, len(got), err, len(want))
				}
			}
			st, ok := d.URingStats()
			if !ok {
				t.Fatal("--fuse-io-uring=on, yet no io_uring transport")
			}
			ops := map[string]uint64{}
			for _, q := range st.Queues {
				for op, n := range q.Ops {
					ops[op] += n
				}
			}
			t.Logf("served by the rings: %v", ops)
			if ops["LOOKUP"] < uint64(len(im.files)) || ops["READ"] == 0 {
				t.Fatalf("the rings served %v; want every LOOKUP and the READs", ops)
			}
			m, err := d.Mount("/")
			testutil.Must(t, err)
			if pushed, _ := m.FS.Stats().Pushed(); pushed != 0 {
				t.Fatalf("%d bytes pushed into the page cache from an io_uring queue", pushed)
			}
		})
	}
}

func TestParseURingMode(t *testing.T) {
	for in, want := range map[string]daemon.URingMode{"": daemon.URingOff, "auto": daemon.URingAuto, "on": daemon.URingOn, "off": daemon.URingOff} {
		if got, err := daemon.ParseURingMode(in); err != nil || got != want {
			t.Errorf("ParseURingMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := daemon.ParseURingMode("yes"); err == nil || !strings.Contains(err.Error(), "auto, on or off") {
		t.Errorf("ParseURingMode(yes): %v", err)
	}
}

// TestURingStopWithOpenFile stops the daemon while a file of its io_uring
// mount is open (the unmount falls back to a lazy one): the open file then
// fails instead of waiting forever on rings nobody serves (issue 22).
func TestURingStopWithOpenFile(t *testing.T) {
	needURing(t)
	work := t.TempDir()
	im := buildImage(t, work, "stop", 4)
	doc := fmt.Sprintf(`{"device":{"backend":{"type":"localfs","config":{"dir":%q}},"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct"}`,
		work, filepath.Join(work, "cache"))
	cfg, err := config.Parse([]byte(doc))
	testutil.Must(t, err)
	d := daemon.New(daemon.Options{URing: daemon.URingOn})
	testutil.Must(t, d.AddMount("/", im.boot, cfg))
	mnt := t.TempDir()
	testutil.Must(t, d.Start(mnt, nil, 4))
	conn, err := fuseuring.ConnOf(mnt)
	testutil.Must(t, err)
	var name string
	for n := range im.files {
		name = n
		break
	}
	f, err := os.Open(filepath.Join(mnt, name))
	testutil.Must(t, err)
	defer f.Close()
	if err := d.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.ReadAt(make([]byte, 4096), 0)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("read of a file of a stopped daemon succeeded")
		}
		t.Logf("read after Stop: %v", err)
	case <-time.After(10 * time.Second):
		fuseuring.AbortConn(conn)
		t.Fatalf("read after Stop hangs")
	}
	if w, err := fuseuring.ConnWaiting(conn); err == nil && w != 0 {
		fuseuring.AbortConn(conn)
		t.Fatalf("connection %d: %d requests waiting after Stop", conn, w)
	}
}

// TestURingNotWithSupervisor: with a supervisor (failover) configured,
// auto serves over /dev/fuse and on is refused: requests on the rings of
// a crashed daemon would not reach its successor.
func TestURingNotWithSupervisor(t *testing.T) {
	needURing(t)
	work := t.TempDir()
	im := buildImage(t, work, "sup", 2)
	doc := fmt.Sprintf(`{"device":{"backend":{"type":"localfs","config":{"dir":%q}},"cache":{"type":"blobcache","config":{"work_dir":%q}}},"mode":"direct"}`,
		work, filepath.Join(work, "cache"))
	cfg, err := config.Parse([]byte(doc))
	testutil.Must(t, err)
	for _, mode := range []daemon.URingMode{daemon.URingAuto, daemon.URingOn} {
		d := daemon.New(daemon.Options{URing: mode, Supervisor: filepath.Join(work, "sup.sock")})
		testutil.Must(t, d.AddMount("/", im.boot, cfg))
		err := d.Start(t.TempDir(), nil, 2)
		if mode == daemon.URingOn {
			if err == nil {
				d.Stop()
				t.Fatalf("--fuse-io-uring=on with a supervisor started")
			}
			d.Stop()
			continue
		}
		testutil.Must(t, err)
		if _, ok := d.URingStats(); ok {
			d.Stop()
			t.Fatalf("--fuse-io-uring=auto with a supervisor serves over io_uring")
		}
		testutil.Must(t, d.Stop())
	}
}
