package storage_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/cache"
)

// ioFaults says which I/O a faultyFS fails with EIO: the server process
// checks for the files fail-reads and fail-writes in its control directory
// on every data read and write, so the test process switches faults by
// creating and removing them.
type ioFaults struct{ ctl string }

func (f ioFaults) on(name string) bool {
	_, err := os.Stat(filepath.Join(f.ctl, name))
	return err == nil
}

func (f ioFaults) set(t *testing.T, name string, on bool) {
	t.Helper()
	p := filepath.Join(f.ctl, name)
	if !on {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// faultyNode is a loopback FUSE node whose cache data files (not the
// mmapped chunk maps) are opened for direct I/O, so every read and write
// reaches this process, and fail with EIO while faults say so: a disk
// going bad under the cache, as the kernel reports it.
type faultyNode struct {
	gofs.LoopbackNode
	faults ioFaults
	name   string
}

func (n *faultyNode) data() bool { return strings.HasSuffix(n.name, cache.DataSuffix) }

// noPassthrough hides the loopback file's backing fd, so the kernel sends
// reads and writes to this process instead of passing them through.
type noPassthrough struct{ *gofs.LoopbackFile }

func (noPassthrough) PassthroughFd() (int, bool) { return 0, false }

func hidePassthrough(fh gofs.FileHandle) gofs.FileHandle {
	if lf, ok := fh.(*gofs.LoopbackFile); ok {
		return noPassthrough{lf}
	}
	return fh
}

func (n *faultyNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags)
	if n.data() {
		fl |= fuse.FOPEN_DIRECT_IO
	}
	return hidePassthrough(fh), fl, errno
}

func (n *faultyNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	ino, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if strings.HasSuffix(name, cache.DataSuffix) {
		fl |= fuse.FOPEN_DIRECT_IO
	}
	return ino, hidePassthrough(fh), fl, errno
}

func (n *faultyNode) Read(ctx context.Context, f gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if n.data() && n.faults.on("fail-reads") {
		return nil, syscall.EIO
	}
	return f.(gofs.FileReader).Read(ctx, dest, off)
}

func (n *faultyNode) Writev(ctx context.Context, f gofs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	if n.data() && n.faults.on("fail-writes") {
		return 0, syscall.EIO
	}
	if fw, ok := f.(gofs.FileWritever); ok {
		return fw.Writev(ctx, data, off)
	}
	var all []byte
	for _, d := range data {
		all = append(all, d...)
	}
	return f.(gofs.FileWriter).Write(ctx, all, off)
}

const faultyChildEnv = "GONYDUS_TEST_FAULTYFS" // under, mountpoint and control dir, as a path list

// TestFaultyFSChild serves the fault-injecting file system for
// mountFaultyFS in a process of its own: the cache maps its chunk map with
// mmap, and a page fault on a FUSE file served by the faulting process
// itself can stop the Go runtime (a thread in the fault cannot reach a
// safepoint while the server's goroutines wait for the world to start).
func TestFaultyFSChild(t *testing.T) {
	spec := os.Getenv(faultyChildEnv)
	if spec == "" {
		t.Skip("helper process for TestCacheEIO")
	}
	parts := strings.Split(spec, string(os.PathListSeparator))
	under, mnt, ctl := parts[0], parts[1], parts[2]
	var st syscall.Stat_t
	if err := syscall.Stat(under, &st); err != nil {
		t.Fatal(err)
	}
	faults := ioFaults{ctl: ctl}
	root := &gofs.LoopbackRoot{Path: under, Dev: st.Dev}
	root.NewNode = func(r *gofs.LoopbackRoot, _ *gofs.Inode, name string, _ *syscall.Stat_t) gofs.InodeEmbedder { //nolint:staticcheck // NewNode still works; moving to NodeWrapChilder is more than a lint fix
		return &faultyNode{LoopbackNode: gofs.LoopbackNode{RootData: r}, faults: faults, name: name}
	}
	root.RootNode = &faultyNode{LoopbackNode: gofs.LoopbackNode{RootData: root}, faults: faults}
	srv, err := gofs.Mount(mnt, root.RootNode, &gofs.Options{MountOptions: fuse.MountOptions{
		Name: "gonydus-eio", DirectMount: true, MaxBackground: 16}})
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	faults.set(t, "ready", true)
	// Serve until the test asks to stop or goes away.
	for !faults.on("stop") && os.Getppid() != 1 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := srv.Unmount(); err != nil {
		syscall.Unmount(mnt, syscall.MNT_DETACH)
	}
}

// mountFaultyFS mounts, served by a child process, a loopback of a new
// directory whose cache data files fail on demand, and returns the mount
// point and the switch of its faults. The child's death ends the FUSE
// connection, so nothing can wait on it for ever.
func mountFaultyFS(t *testing.T) (string, ioFaults) {
	t.Helper()
	testutil.RequireFUSE(t) // mounts a fault-injecting FUSE file system
	under, mnt, ctl := t.TempDir(), t.TempDir(), t.TempDir()
	faults := ioFaults{ctl: ctl}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultyFSChild$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), faultyChildEnv+"="+strings.Join([]string{under, mnt, ctl}, string(os.PathListSeparator)))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		faults.set(t, "stop", true)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill() // its /dev/fuse closes: the kernel ends the connection
			<-exited
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); !faults.on("ready"); {
		select {
		case <-exited:
			t.Fatalf("the fault-injecting file system did not start:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fault-injecting file system did not start in 30 s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return mnt, faults
}

// TestCacheEIO: the cache file system starts failing reads and writes with
// EIO under a filled cache. Policy seen: a chunk whose cached copy cannot be
// read is fetched from the backend and served (verified); a chunk that
// cannot be written is served and not marked ready; no read fails and no
// wrong byte is served. When the disk recovers the cache works again.
func TestCacheEIO(t *testing.T) {
	work, faults := mountFaultyFS(t)
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 1<<20, 3000)
	r := openCounting(t, tb.path)

	// A cache filled while the disk is good.
	b := newBlob(t, tb, r, storage.WithCache(openCache(t, work, tb)), storage.WithAmplify(0))
	readAll(t, b, tb)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	// Reads fail: every chunk comes from the backend, correct.
	cf := openCache(t, work, tb)
	if st := cf.Stats(); st.Ready != st.Chunks {
		t.Fatalf("cache not complete before the faults: %+v", st)
	}
	faults.set(t, "fail-reads", true)
	r.reset()
	b = newBlob(t, tb, r, storage.WithCache(cf), storage.WithAmplify(0))
	readAll(t, b, tb)
	t.Logf("reads failing: %d backend requests for %d chunks", r.requests.Load(), len(tb.chunks))
	if r.requests.Load() == 0 {
		t.Fatal("no backend request with every cache read failing: the fault was not exercised")
	}
	if _, _, err := cf.Get(tb.chunks[0], nil); err == nil {
		t.Fatal("Get on a failing disk reported no error")
	} else {
		t.Logf("cache Get: %v", err)
	}
	b.Close()

	// Writes fail too, on an empty cache: reads are served, nothing is
	// marked ready, the failures are counted.
	faults.set(t, "fail-writes", true)
	cf = openCache(t, work, tb)
	for _, c := range tb.chunks {
		if err := cf.Invalidate(c); err != nil {
			t.Fatal(err)
		}
	}
	r.reset()
	b = newBlob(t, tb, r, storage.WithCache(cf), storage.WithAmplify(0))
	readAll(t, b, tb)
	m := b.Metrics().Snapshot()
	st := cf.Stats()
	t.Logf("writes failing: %d cache write errors, %d of %d ready", m.CacheWriteErrors, st.Ready, st.Chunks)
	if m.CacheWriteErrors == 0 || st.Ready != 0 {
		t.Fatalf("cache write errors %d, ready %d: want failures counted and nothing marked ready", m.CacheWriteErrors, st.Ready)
	}
	b.Close()

	// The disk recovers: the cache fills and serves again.
	faults.set(t, "fail-reads", false)
	faults.set(t, "fail-writes", false)
	r.reset()
	b = newBlob(t, tb, r, storage.WithCache(openCache(t, work, tb)), storage.WithAmplify(0))
	readAll(t, b, tb)
	r.reset()
	readAll(t, b, tb)
	if n := r.requests.Load(); n != 0 {
		t.Fatalf("after recovery the cache served nothing: %d backend requests", n)
	}
}
