package storage_test

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
	"github.com/gonydus/nydus/storage/cache"
)

// ioFaults says which I/O a faultyFS fails with EIO.
type ioFaults struct {
	reads, writes    atomic.Bool
	failedReads      atomic.Int64
	failedWrites     atomic.Int64
	passedDataReads  atomic.Int64
	passedDataWrites atomic.Int64
}

// faultyNode is a loopback FUSE node whose cache data files (not the
// mmapped chunk maps) are opened for direct I/O, so every read and write
// reaches this process, and fail with EIO while faults say so: a disk
// going bad under the cache, as the kernel reports it.
type faultyNode struct {
	gofs.LoopbackNode
	faults *ioFaults
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
	if n.data() {
		if n.faults.reads.Load() {
			n.faults.failedReads.Add(1)
			return nil, syscall.EIO
		}
		n.faults.passedDataReads.Add(1)
	}
	return f.(gofs.FileReader).Read(ctx, dest, off)
}

func (n *faultyNode) Writev(ctx context.Context, f gofs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	if n.data() {
		if n.faults.writes.Load() {
			n.faults.failedWrites.Add(1)
			return 0, syscall.EIO
		}
		n.faults.passedDataWrites.Add(1)
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

// mountFaultyFS mounts a loopback of a new directory whose cache data files
// fail on demand, and returns the mount point.
func mountFaultyFS(t *testing.T, faults *ioFaults) string {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and /dev/fuse to mount a fault-injecting FUSE file system")
	}
	under, mnt := t.TempDir(), t.TempDir()
	var st syscall.Stat_t
	if err := syscall.Stat(under, &st); err != nil {
		t.Fatal(err)
	}
	root := &gofs.LoopbackRoot{Path: under, Dev: st.Dev}
	root.NewNode = func(r *gofs.LoopbackRoot, _ *gofs.Inode, name string, _ *syscall.Stat_t) gofs.InodeEmbedder {
		return &faultyNode{LoopbackNode: gofs.LoopbackNode{RootData: r}, faults: faults, name: name}
	}
	root.RootNode = &faultyNode{LoopbackNode: gofs.LoopbackNode{RootData: root}, faults: faults}
	srv, err := gofs.Mount(mnt, root.RootNode, &gofs.Options{MountOptions: fuse.MountOptions{
		Name: "gonydus-eio", DirectMount: true, MaxBackground: 16}})
	if err != nil {
		t.Skipf("cannot mount FUSE: %v", err)
	}
	t.Cleanup(func() {
		done := make(chan error, 1)
		go func() { done <- srv.Unmount() }()
		select {
		case err := <-done:
			if err != nil {
				syscall.Unmount(mnt, syscall.MNT_DETACH)
			}
		case <-time.After(10 * time.Second):
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	return mnt
}

// TestCacheEIO: the cache file system starts failing reads and writes with
// EIO under a filled cache. Policy seen: a chunk whose cached copy cannot be
// read is fetched from the backend and served (verified); a chunk that
// cannot be written is served and not marked ready; no read fails and no
// wrong byte is served. When the disk recovers the cache works again.
func TestCacheEIO(t *testing.T) {
	var faults ioFaults
	work := mountFaultyFS(t, &faults)
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 1<<20, 3000)
	r := openCounting(t, tb.path)

	// A cache filled while the disk is good.
	b := newBlob(t, tb, r, storage.WithCache(openCache(t, work, tb)), storage.WithAmplify(0))
	readAll(t, b, tb)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if faults.passedDataWrites.Load() == 0 {
		t.Fatal("the cache wrote nothing through the FUSE file system")
	}

	// Reads fail: every chunk comes from the backend, correct.
	cf := openCache(t, work, tb)
	if st := cf.Stats(); st.Ready != st.Chunks {
		t.Fatalf("cache not complete before the faults: %+v", st)
	}
	faults.reads.Store(true)
	r.reset()
	b = newBlob(t, tb, r, storage.WithCache(cf), storage.WithAmplify(0))
	readAll(t, b, tb)
	t.Logf("reads failing: %d EIO reads, %d backend requests for %d chunks", faults.failedReads.Load(), r.requests.Load(), len(tb.chunks))
	if faults.failedReads.Load() == 0 || r.requests.Load() == 0 {
		t.Fatalf("EIO reads %d, backend requests %d: the fault was not exercised", faults.failedReads.Load(), r.requests.Load())
	}
	if _, _, err := cf.Get(tb.chunks[0], nil); err == nil {
		t.Fatal("Get on a failing disk reported no error")
	} else {
		t.Logf("cache Get: %v", err)
	}
	b.Close()

	// Writes fail too, on an empty cache: reads are served, nothing is
	// marked ready, the failures are counted.
	faults.writes.Store(true)
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
	t.Logf("writes failing: %d EIO writes, %d cache write errors, %d of %d ready", faults.failedWrites.Load(), m.CacheWriteErrors, st.Ready, st.Chunks)
	if faults.failedWrites.Load() == 0 || m.CacheWriteErrors == 0 || st.Ready != 0 {
		t.Fatalf("failed writes %d, counted %d, ready %d: want failures counted and nothing marked ready", faults.failedWrites.Load(), m.CacheWriteErrors, st.Ready)
	}
	b.Close()

	// The disk recovers: the cache fills and serves again.
	faults.reads.Store(false)
	faults.writes.Store(false)
	r.reset()
	b = newBlob(t, tb, r, storage.WithCache(openCache(t, work, tb)), storage.WithAmplify(0))
	readAll(t, b, tb)
	r.reset()
	readAll(t, b, tb)
	if n := r.requests.Load(); n != 0 {
		t.Fatalf("after recovery the cache served nothing: %d backend requests", n)
	}
}
