package fuseuring

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/internal/testutil"
)

// needURing makes sure FUSE over io_uring can be used, turning the fuse
// module's enable_uring on for the test and back to its old value after,
// or skips saying why.
func needURing(tb testing.TB) {
	tb.Helper()
	testutil.RequireRoot(tb, "mounts FUSE and sets fuse.enable_uring")
	testutil.RequireFUSE(tb)
	testutil.RequireFusermount(tb)
	restore, err := Enable()
	if err != nil {
		testutil.Missing(tb, "FUSE over io_uring: %v", err)
	}
	tb.Cleanup(func() {
		if err := restore(); err != nil {
			tb.Errorf("restore %s: %v", enableURingParam, err)
		}
	})
	if err := Available(); err != nil {
		testutil.Missing(tb, "FUSE over io_uring: %v", err)
	}
}

type mounted struct {
	dir  string
	conn int // FUSE connection id, for /sys/fs/fuse/connections
	srv  *fuse.Server
	tr   *Transport // nil without the ring
	dev  *DevLoop   // set when served by ServeDevice
}

// ops returns the requests served per operation by the ring or DevLoop.
func (m *mounted) ops() (total uint64, ops map[string]uint64) {
	if m.dev != nil {
		return m.dev.Requests(), m.dev.Ops()
	}
	st := m.tr.Stats()
	ops = map[string]uint64{}
	for _, q := range st.Queues {
		for k, v := range q.Ops {
			ops[k] += v
		}
	}
	return st.Requests, ops
}

// connOf finds the FUSE connection id of the mount at dir, or -1.
func connOf(dir string) int {
	conn, err := ConnOf(dir)
	if err != nil {
		return -1
	}
	return conn
}

// abort ends the FUSE connection (mounting fusectl if needed): nothing
// waits on this process's own daemon any more (a client thread stuck on
// it would keep the test process from exiting).
func (m *mounted) abort() {
	if m.conn >= 0 {
		AbortConn(m.conn)
	}
}

// mount serves root at a new directory, with the io_uring transport when
// ring is set.
func mount(tb testing.TB, root fs.InodeEmbedder, ring bool, topts ...Option) *mounted {
	tb.Helper()
	return mountWith(tb, root, ring, nil, topts...)
}

func mountWith(tb testing.TB, root fs.InodeEmbedder, ring bool, tweak func(*fs.Options), topts ...Option) *mounted {
	tb.Helper()
	return mountHow(tb, root, ring, false, tweak, topts...)
}

// mountHow serves root at a new directory: with the io_uring transport
// (ring), with ServeDevice (dev) or with go-fuse's loop.
func mountHow(tb testing.TB, root fs.InodeEmbedder, ring, dev bool, tweak func(*fs.Options), topts ...Option) *mounted {
	tb.Helper()
	dir := tb.TempDir()
	zero := time.Duration(0)
	opts := &fs.Options{EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero}
	opts.MountOptions = fuse.MountOptions{FsName: "fuseuring-test", Name: "fuseuringtest"}
	if ring {
		opts.MountOptions.ExtraCapabilities = fuse.CAP_OVER_IO_URING
	}
	if tweak != nil {
		tweak(opts)
	}
	raw := fs.NewNodeFS(root, opts)
	srv, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		tb.Fatalf("mount: %v", err)
	}
	m := &mounted{dir: dir, conn: connOf(dir), srv: srv}
	if dev {
		if m.dev, err = ServeDevice(srv, raw, topts...); err != nil {
			go srv.Serve()
			srv.Unmount()
			tb.Fatalf("ServeDevice: %v", err)
		}
	} else if ring {
		m.tr, err = Start(srv, raw, topts...)
		if err != nil {
			m.abort()
			go srv.Serve()
			srv.Unmount()
			tb.Fatalf("Start: %v", err)
		}
	}
	if m.dev == nil {
		go srv.Serve()
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			m.abort()
		}
		m.unmount(tb)
	})
	if err := srv.WaitMount(); err != nil {
		tb.Fatalf("WaitMount: %v", err)
	}
	return m
}

func (m *mounted) unmount(tb testing.TB) {
	if m.srv == nil {
		return
	}
	if err := m.srv.Unmount(); err != nil {
		tb.Errorf("unmount: %v", err)
		m.abort()
		unix.Unmount(m.dir, unix.MNT_DETACH)
	}
	m.waitEnded(tb, "after unmount")
}

// waitEnded waits (boundedly) for go-fuse's Serve and the queues to end once
// the connection is gone, then closes the transport.
func (m *mounted) waitEnded(tb testing.TB, after string) {
	tb.Helper()
	if !waitOrFail(tb, "go-fuse Serve to end", func() { m.srv.Wait() }) {
		m.abort()
	}
	if m.dev != nil {
		select {
		case <-m.dev.Done():
		case <-time.After(10 * time.Second):
			tb.Errorf("/dev/fuse loop still running 10s %s", after)
		}
	}
	if m.tr != nil {
		select {
		case <-m.tr.Done():
		case <-time.After(10 * time.Second):
			tb.Errorf("queues still running 10s %s", after)
		}
		if err := m.tr.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	}
	m.srv = nil
}

func waitOrFail(tb testing.TB, what string, f func()) bool {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(10 * time.Second):
		tb.Errorf("timed out waiting for %s", what)
		return false
	}
}

// xattrFile is an in-memory file with extended attributes.
type xattrFile struct {
	fs.MemRegularFile
	mu    sync.Mutex
	attrs map[string][]byte
}

var _ = (fs.NodeGetxattrer)((*xattrFile)(nil))
var _ = (fs.NodeListxattrer)((*xattrFile)(nil))
var _ = (fs.NodeSetxattrer)((*xattrFile)(nil))

func (f *xattrFile) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.attrs[attr]
	if !ok {
		return 0, syscall.ENODATA
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func (f *xattrFile) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b []byte
	for k := range f.attrs {
		b = append(append(b, k...), 0)
	}
	if len(dest) < len(b) {
		return uint32(len(b)), syscall.ERANGE
	}
	return uint32(copy(dest, b)), 0
}

func (f *xattrFile) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attrs[attr] = bytes.Clone(data)
	return 0
}

var bigData = func() []byte {
	b := make([]byte, 300*1024+123)
	for i := range b {
		b[i] = byte(i*7 + i>>10)
	}
	return b
}()

// testTree is: d/ (dir) with d/f ("hello"), big (300 KiB), l -> d/f, x (xattrs).
type testTree struct{ fs.Inode }

func (r *testTree) OnAdd(ctx context.Context) {
	d := r.NewPersistentInode(ctx, &fs.Inode{}, fs.StableAttr{Mode: syscall.S_IFDIR})
	r.AddChild("d", d, false)
	d.AddChild("f", r.NewPersistentInode(ctx, &fs.MemRegularFile{Data: []byte("hello"), Attr: fuse.Attr{Mode: 0o644}}, fs.StableAttr{}), false)
	r.AddChild("big", r.NewPersistentInode(ctx, &fs.MemRegularFile{Data: bigData, Attr: fuse.Attr{Mode: 0o444}}, fs.StableAttr{}), false)
	r.AddChild("l", r.NewPersistentInode(ctx, &fs.MemSymlink{Data: []byte("d/f")}, fs.StableAttr{Mode: syscall.S_IFLNK}), false)
	x := &xattrFile{attrs: map[string][]byte{"user.a": []byte("alpha"), "user.b": []byte("beta")}}
	x.Data = []byte("x")
	r.AddChild("x", r.NewPersistentInode(ctx, x, fs.StableAttr{}), false)
}

func TestReadOnlyTreeThroughRing(t *testing.T) {
	needURing(t)
	t.Run("inline", func(t *testing.T) { testReadOnlyTree(t) })
	t.Run("async", func(t *testing.T) { testReadOnlyTree(t, WithAsync(true), WithEntries(4)) })
}

func testReadOnlyTree(t *testing.T, topts ...Option) {
	m := mount(t, &testTree{}, true, topts...)
	before := m.tr.Stats()

	st, err := os.Lstat(filepath.Join(m.dir, "d", "f"))
	if err != nil || st.Size() != 5 || st.Mode().Perm() != 0o644 {
		t.Fatalf("lstat d/f: %v %v", st, err)
	}
	if _, err := os.Lstat(filepath.Join(m.dir, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lstat nope: %v", err)
	}
	ents, err := os.ReadDir(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, ","); got != "big,d,l,x" {
		t.Fatalf("readdir: %s", got)
	}
	b, err := os.ReadFile(filepath.Join(m.dir, "d", "f"))
	if err != nil || string(b) != "hello" {
		t.Fatalf("read d/f: %q %v", b, err)
	}
	b, err = os.ReadFile(filepath.Join(m.dir, "big"))
	if err != nil || !bytes.Equal(b, bigData) {
		t.Fatalf("read big: %d bytes, %v", len(b), err)
	}
	target, err := os.Readlink(filepath.Join(m.dir, "l"))
	if err != nil || target != "d/f" {
		t.Fatalf("readlink: %q %v", target, err)
	}
	b, err = os.ReadFile(filepath.Join(m.dir, "l"))
	if err != nil || string(b) != "hello" {
		t.Fatalf("read via symlink: %q %v", b, err)
	}
	buf := make([]byte, 64)
	n, err := unix.Getxattr(filepath.Join(m.dir, "x"), "user.a", buf)
	if err != nil || string(buf[:n]) != "alpha" {
		t.Fatalf("getxattr: %q %v", buf[:n], err)
	}
	if n, err := unix.Getxattr(filepath.Join(m.dir, "x"), "user.b", nil); err != nil || n != 4 {
		t.Fatalf("getxattr size: %d %v", n, err)
	}
	if _, err := unix.Getxattr(filepath.Join(m.dir, "x"), "user.none", buf); err != unix.ENODATA {
		t.Fatalf("getxattr missing: %v", err)
	}
	n, err = unix.Listxattr(filepath.Join(m.dir, "x"), buf)
	if err != nil || !strings.Contains(string(buf[:n]), "user.a\x00") || !strings.Contains(string(buf[:n]), "user.b\x00") {
		t.Fatalf("listxattr: %q %v", buf[:n], err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(m.dir, &sfs); err != nil {
		t.Fatalf("statfs: %v", err)
	}

	after := m.tr.Stats()
	ops := map[string]uint64{}
	for _, q := range after.Queues {
		for k, v := range q.Ops {
			ops[k] += v
		}
	}
	for _, q := range before.Queues {
		for k, v := range q.Ops {
			ops[k] -= v
		}
	}
	t.Logf("served by the ring: %d requests, per op %v", after.Requests-before.Requests, ops)
	for _, op := range []string{"LOOKUP", "GETATTR", "READDIRPLUS", "OPEN", "READ", "READLINK", "GETXATTR", "LISTXATTR", "RELEASE", "STATFS"} {
		if ops[op] == 0 && !(op == "READDIRPLUS" && ops["READDIR"] > 0) && !(op == "GETATTR") {
			t.Errorf("no %s served by the ring or loop", op)
		}
	}
	for _, q := range after.Queues {
		t.Logf("queue %d: %d requests, %d errors", q.QID, q.Requests, q.Errors)
	}
}

// TestOnEveryCPU checks that requests issued from each CPU are served by
// that CPU's queue.
func TestOnEveryCPU(t *testing.T) {
	needURing(t)
	m := mount(t, &testTree{}, true)
	n, _ := possibleCPUs()
	for cpu := range n {
		before := m.tr.Stats().Queues[cpu].Requests
		done := make(chan error)
		go func() {
			runtime.LockOSThread()
			var set unix.CPUSet
			set.Set(cpu)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				done <- err
				return
			}
			for i := range 50 {
				os.Lstat(filepath.Join(m.dir, fmt.Sprintf("none%d", i)))
			}
			done <- nil
		}()
		if err := <-done; err != nil {
			t.Logf("cpu %d: %v", cpu, err)
			continue
		}
		if got := m.tr.Stats().Queues[cpu].Requests - before; got < 50 {
			t.Errorf("cpu %d: queue %d served %d of 50 lookups", cpu, cpu, got)
		}
	}
}

// TestLoopbackWritableThroughRing runs file system changes through a
// loopback mount, once with FUSE passthrough off (so READ and WRITE come
// through the ring) and once with go-fuse's default passthrough (OPEN
// replies carrying a backing id go through the ring; data bypasses it).
func TestLoopbackWritableThroughRing(t *testing.T) {
	needURing(t)
	t.Run("no-passthrough", func(t *testing.T) { testLoopback(t, false, false) })
	t.Run("passthrough", func(t *testing.T) { testLoopback(t, true, false) })
	t.Run("no-passthrough-async", func(t *testing.T) { testLoopback(t, false, false, WithAsync(true)) })
}

// testLoopback runs file operations through a loopback mount served by
// the rings or (dev) by ServeDevice and checks the backing directory.
func testLoopback(t *testing.T, passthrough, dev bool, topts ...Option) {
	back := t.TempDir()
	root, err := fs.NewLoopbackRoot(back)
	if err != nil {
		t.Fatal(err)
	}
	m := mountHow(t, root, !dev, dev, func(o *fs.Options) {
		if !passthrough {
			o.MountOptions.DisabledCapabilities |= fuse.CAP_PASSTHROUGH
		}
	}, topts...)
	before, _ := m.ops()
	p := func(s string) string { return filepath.Join(m.dir, s) }
	bp := func(s string) string { return filepath.Join(back, s) }

	if err := os.Mkdir(p("sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p("sub/a"), os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 KB: several WRITEs
	if _, err := f.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(bp("sub/a")); err != nil || !bytes.Equal(b, payload) {
		t.Fatalf("backing file: %d bytes %v", len(b), err)
	}
	if err := os.Rename(p("sub/a"), p("sub/b")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bp("sub/b")); err != nil {
		t.Fatalf("rename not in backing dir: %v", err)
	}
	if err := os.Truncate(p("sub/b"), 1000); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(bp("sub/b")); err != nil || st.Size() != 1000 {
		t.Fatalf("truncate: %v %v", st, err)
	}
	if err := unix.Setxattr(p("sub/b"), "user.k", []byte("v1"), 0); err != nil {
		t.Fatalf("setxattr: %v", err)
	}
	buf := make([]byte, 16)
	if n, err := unix.Getxattr(bp("sub/b"), "user.k", buf); err != nil || string(buf[:n]) != "v1" {
		t.Fatalf("xattr in backing file: %q %v", buf[:n], err)
	}
	if err := unix.Removexattr(p("sub/b"), "user.k"); err != nil {
		t.Fatalf("removexattr: %v", err)
	}
	if err := os.Symlink("b", p("sub/s")); err != nil {
		t.Fatal(err)
	}
	if tgt, err := os.Readlink(bp("sub/s")); err != nil || tgt != "b" {
		t.Fatalf("symlink: %q %v", tgt, err)
	}
	if err := os.Link(p("sub/b"), p("sub/h")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p("sub/b"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(bp("sub/b")); st.Mode().Perm() != 0o600 {
		t.Fatalf("chmod: %v", st.Mode())
	}
	// Append and read back through the mount.
	f, err = os.OpenFile(p("sub/b"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("tail")
	f.Close()
	b, err := os.ReadFile(p("sub/h"))
	if err != nil || len(b) != 1004 || string(b[1000:]) != "tail" {
		t.Fatalf("read back: %d %v", len(b), err)
	}
	for _, s := range []string{"sub/b", "sub/h", "sub/s"} {
		if err := os.Remove(p(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(p("sub")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bp("sub")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("rmdir not in backing dir: %v", err)
	}
	total, ops := m.ops()
	t.Logf("served by the ring or loop: %d requests, per op %v", total-before, ops)
	want := []string{"MKDIR", "CREATE", "RENAME", "SETATTR", "SETXATTR", "REMOVEXATTR", "SYMLINK", "LINK", "UNLINK", "RMDIR", "FSYNC", "FLUSH"}
	if !passthrough {
		want = append(want, "WRITE", "READ")
	}
	for _, op := range want {
		if ops[op] == 0 && !(op == "RENAME" && ops["RENAME2"] > 0) {
			t.Errorf("no %s served by the ring or loop", op)
		}
	}
}

func goroutinesSettle(tb testing.TB, base int) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			tb.Fatalf("goroutines: %d, want <= %d\n%s", n, base, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUnmountIdle(t *testing.T) {
	needURing(t)
	base := runtime.NumGoroutine()
	m := mount(t, &testTree{}, true)
	if _, err := os.ReadFile(filepath.Join(m.dir, "d", "f")); err != nil {
		t.Fatal(err)
	}
	m.unmount(t)
	goroutinesSettle(t, base)
}

// TestUnmountWhileReading detaches the mount while a reader is busy in it,
// then aborts the connection: the reader gets an error, nothing hangs.
func TestUnmountWhileReading(t *testing.T) {
	needURing(t)
	base := runtime.NumGoroutine()
	m := mount(t, &testTree{}, true)
	var st unix.Stat_t
	if err := unix.Stat(m.dir, &st); err != nil {
		t.Fatal(err)
	}
	conn := unix.Minor(st.Dev)

	stop := make(chan struct{})
	readerDone := make(chan error)
	go func() {
		f, err := os.Open(filepath.Join(m.dir, "big"))
		if err != nil {
			readerDone <- err
			return
		}
		defer f.Close()
		buf := make([]byte, 4096)
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				readerDone <- nil
				return
			default:
			}
			if _, err := f.ReadAt(buf, (i*4096)%int64(len(bigData)-4096)); err != nil {
				readerDone <- err
				return
			}
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	// Lazy unmount: the open file keeps the connection alive.
	if err := unix.Unmount(m.dir, unix.MNT_DETACH); err != nil {
		t.Fatalf("umount -l: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-readerDone:
		t.Fatalf("reader ended early: %v", err)
	default:
	}
	// Abort the connection under the reader.
	if err := AbortConn(int(conn)); err != nil {
		close(stop)
		t.Fatalf("abort: %v", err)
	}
	select {
	case err := <-readerDone:
		if err == nil {
			t.Fatalf("reader saw no error after abort")
		}
		t.Logf("reader after abort: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("reader hangs after abort")
	}
	close(stop)
	if m.waitEnded(t, "after abort"); t.Failed() {
		t.FailNow()
	}
	goroutinesSettle(t, base)
}

// TestUnmountDetachReaderCloses lazily unmounts under an active reader that
// then closes its file: the connection ends cleanly.
func TestUnmountDetachReaderCloses(t *testing.T) {
	needURing(t)
	base := runtime.NumGoroutine()
	m := mount(t, &testTree{}, true)
	f, err := os.Open(filepath.Join(m.dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(m.dir, unix.MNT_DETACH); err != nil {
		t.Fatalf("umount -l: %v", err)
	}
	buf := make([]byte, 8192)
	if _, err := f.ReadAt(buf, 8192); err != nil {
		t.Fatalf("read after lazy unmount: %v", err)
	}
	f.Close()
	if m.waitEnded(t, "after the last file closed"); t.Failed() {
		t.FailNow()
	}
	goroutinesSettle(t, base)
}

// TestStartFailureFallsBack makes registration fail (payload buffers
// smaller than the mount's max_write): Start reports it, and the kernel,
// told to give up on io_uring, serves the mount through /dev/fuse.
func TestStartFailureFallsBack(t *testing.T) {
	needURing(t)
	dir := t.TempDir()
	opts := &fs.Options{}
	opts.MountOptions = fuse.MountOptions{FsName: "fuseuring-test", ExtraCapabilities: fuse.CAP_OVER_IO_URING, MaxWrite: 1 << 20}
	raw := fs.NewNodeFS(&testTree{}, opts)
	srv, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Start(srv, raw, WithMaxWrite(64<<10))
	if err == nil {
		tr.Close()
		t.Fatalf("Start with too small buffers succeeded")
	}
	t.Logf("Start: %v", err)
	go srv.Serve()
	defer func() {
		srv.Unmount()
		waitOrFail(t, "go-fuse Serve to end", func() { srv.Wait() })
	}()
	done := make(chan error, 1)
	go func() {
		if err := srv.WaitMount(); err != nil {
			done <- err
			return
		}
		b, err := os.ReadFile(filepath.Join(dir, "d", "f"))
		if err == nil && string(b) != "hello" {
			err = fmt.Errorf("read %q", b)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		// Unblock the stuck request so the test can end.
		AbortConn(connOf(dir))
		t.Fatalf("mount hangs after a failed Start")
	}
}

// TestTurnOffURing: a mount whose INIT negotiated io_uring holds requests
// back until rings are registered; turnOffURing releases them to
// /dev/fuse (what Start does when it fails before registering).
func TestTurnOffURing(t *testing.T) {
	needURing(t)
	dir := t.TempDir()
	opts := &fs.Options{}
	opts.MountOptions = fuse.MountOptions{FsName: "fuseuring-test", ExtraCapabilities: fuse.CAP_OVER_IO_URING}
	raw := fs.NewNodeFS(&testTree{}, opts)
	srv, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		t.Fatal(err)
	}
	clone, err := deviceCloner(srv, -1)
	if err != nil {
		t.Fatal(err)
	}
	turnOffURing(clone, slog.Default())
	go srv.Serve()
	defer func() {
		srv.Unmount()
		waitOrFail(t, "go-fuse Serve to end", func() { srv.Wait() })
	}()
	done := make(chan error, 1)
	go func() {
		if err := srv.WaitMount(); err != nil {
			done <- err
			return
		}
		_, err := os.ReadFile(filepath.Join(dir, "d", "f"))
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		AbortConn(connOf(dir))
		t.Fatalf("mount hangs after turnOffURing")
	}
}

// blockingFile's reads wait until release is closed.
type blockingFile struct {
	fs.Inode
	entered chan struct{}
	release chan struct{}
}

func (f *blockingFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (f *blockingFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = fuse.S_IFREG | 0o444
	out.Size = 4096
	return 0
}

func (f *blockingFile) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if off > 0 {
		return fuse.ReadResultData(nil), 0
	}
	f.entered <- struct{}{}
	<-f.release
	return fuse.ReadResultData([]byte("done")), 0
}

type blockingTree struct {
	fs.Inode
	file *blockingFile
}

func (r *blockingTree) OnAdd(ctx context.Context) {
	r.AddChild("slow", r.NewPersistentInode(ctx, r.file, fs.StableAttr{}), false)
}

// TestAsyncOpsDoNotStallQueue: with READ handed to goroutines, a read that
// blocks in the file system does not hold up a lookup from the same CPU.
func TestAsyncOpsDoNotStallQueue(t *testing.T) {
	needURing(t)
	t.Run("ops", func(t *testing.T) { testAsyncOps(t, WithAsyncOps("READ")) })
	t.Run("if", func(t *testing.T) { testAsyncOps(t, WithAsyncIf(func(op uint32) bool { return op == 15 })) })
}

func testAsyncOps(t *testing.T, async Option) { testAsyncOpsHow(t, false, async, WithEntries(2)) }

// testAsyncOpsHow checks that a read blocked in the file system, served
// by a goroutine, does not hold up a lookup, with the rings or (dev)
// ServeDevice.
func testAsyncOpsHow(t *testing.T, dev bool, topts ...Option) {
	bf := &blockingFile{entered: make(chan struct{}, 1), release: make(chan struct{})}
	m := mountHow(t, &blockingTree{file: bf}, !dev, dev, nil, topts...)
	onCPU0 := func(f func()) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			runtime.LockOSThread()
			var set unix.CPUSet
			set.Set(0)
			unix.SchedSetaffinity(0, &set)
			f()
		}()
		return done
	}
	var got []byte
	var readErr error
	readDone := onCPU0(func() { got, readErr = os.ReadFile(filepath.Join(m.dir, "slow")) })
	select {
	case <-bf.entered:
	case <-time.After(10 * time.Second):
		t.Fatalf("read never reached the file system")
	}
	lookupDone := onCPU0(func() { os.Lstat(filepath.Join(m.dir, "nothing")) })
	select {
	case <-lookupDone:
	case <-time.After(5 * time.Second):
		close(bf.release)
		t.Fatalf("lookup stalled behind a blocked read")
	}
	close(bf.release)
	<-readDone
	if readErr != nil || string(got) != "done" {
		t.Fatalf("read: %q %v", got, readErr)
	}
}

func TestRingSetupFlags(t *testing.T) {
	needURing(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := newRing(4)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	t.Logf("io_uring setup flags %#x (single issuer + defer taskrun: %v)", r.flags, r.flags&setupDeferTaskrun != 0)
	if r.flags&setupSQE128 == 0 {
		t.Fatalf("ring without SQE128")
	}
}

// TestConcurrentClients runs many clients on all CPUs at once against
// queues with few entries, checking every answer.
func TestConcurrentClients(t *testing.T) {
	needURing(t)
	for _, name := range []string{"inline", "async"} {
		t.Run(name, func(t *testing.T) {
			var topts []Option
			if name == "async" {
				topts = append(topts, WithAsyncOps("READ", "LOOKUP"), WithEntries(3))
			}
			m := mount(t, &testTree{}, true, topts...)
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for c := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					f, err := os.Open(filepath.Join(m.dir, "big"))
					if err != nil {
						errs <- err
						return
					}
					defer f.Close()
					buf := make([]byte, 5000)
					for i := range 300 {
						off := int64((c*7919 + i*4093) % (len(bigData) - len(buf)))
						unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
						if _, err := f.ReadAt(buf, off); err != nil {
							errs <- err
							return
						}
						if !bytes.Equal(buf, bigData[off:off+int64(len(buf))]) {
							errs <- fmt.Errorf("client %d: wrong data at %d", c, off)
							return
						}
						if _, err := os.Lstat(filepath.Join(m.dir, fmt.Sprintf("missing-%d-%d", c, i))); !errors.Is(err, os.ErrNotExist) {
							errs <- fmt.Errorf("lstat: %w", err)
							return
						}
						if b, err := os.ReadFile(filepath.Join(m.dir, "d", "f")); err != nil || string(b) != "hello" {
							errs <- fmt.Errorf("read d/f: %q %w", b, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			st := m.tr.Stats()
			t.Logf("ring served %d requests (queue 0: %d, queue 1: %d)", st.Requests, st.Queues[0].Requests, st.Queues[len(st.Queues)-1].Requests)
		})
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Option{WithEntries(0), WithEntries(65), WithMaxWrite(100), WithDeviceFD(-1), WithLogger(nil), WithStartTimeout(0), WithAsyncOps("NOPE"), WithAsyncIf(nil)} {
		var c config
		if err := o(&c); err == nil {
			t.Errorf("option accepted a bad value")
		}
	}
	if _, err := Start(nil, nil); err == nil {
		t.Errorf("Start(nil, nil) succeeded")
	}
}

// TestStartFailsHalfWay: the last queue's registration fails after the
// others registered. Start reports it; the kernel, never switched to the
// rings, serves everything over /dev/fuse; the registered queues end with
// the connection at unmount, and nothing is left waiting.
func TestStartFailsHalfWay(t *testing.T) {
	needURing(t)
	n, err := possibleCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Skipf("skipped: needs 2 possible CPUs for a half-registered ring, have %d", n)
	}
	dir := t.TempDir()
	opts := &fs.Options{}
	opts.MountOptions = fuse.MountOptions{FsName: "fuseuring-test", ExtraCapabilities: fuse.CAP_OVER_IO_URING}
	raw := fs.NewNodeFS(&testTree{}, opts)
	srv, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		t.Fatal(err)
	}
	conn := connOf(dir)
	failLast := func(c *config) error { c.failQID = n - 1; return nil }
	tr, err := Start(srv, raw, failLast)
	if err == nil {
		tr.Close()
		t.Fatalf("Start with a failing queue succeeded")
	}
	t.Logf("Start: %v", err)
	go srv.Serve()
	done := make(chan error, 1)
	go func() {
		if err := srv.WaitMount(); err != nil {
			done <- err
			return
		}
		for i := range 50 {
			b, err := os.ReadFile(filepath.Join(dir, "d", "f"))
			if err == nil && string(b) != "hello" {
				err = fmt.Errorf("read %q", b)
			}
			if err != nil {
				done <- fmt.Errorf("read %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			AbortConn(conn)
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		AbortConn(conn)
		t.Fatalf("mount hangs after Start failed half way")
	}
	if err := srv.Unmount(); err != nil {
		AbortConn(conn)
		t.Fatalf("unmount: %v", err)
	}
	waitOrFail(t, "go-fuse Serve to end", func() { srv.Wait() })
	if alive, err := ConnAlive(conn); err != nil || alive {
		if w, _ := ConnWaiting(conn); w != 0 {
			AbortConn(conn)
			t.Fatalf("connection %d: %d requests waiting after unmount", conn, w)
		}
	}
}

// TestCloseWhileMounted: Close on a mounted, busy transport aborts the
// connection; the client gets an error instead of waiting forever.
func TestCloseWhileMounted(t *testing.T) {
	needURing(t)
	m := mount(t, &testTree{}, true)
	f, err := os.Open(filepath.Join(m.dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := m.tr.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-m.tr.Done():
	default:
		t.Fatalf("queues still running after Close")
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := f.ReadAt(make([]byte, 4096), 0)
		readErr <- err
	}()
	select {
	case err := <-readErr:
		if !errors.Is(err, unix.ENOTCONN) && !errors.Is(err, unix.ECONNABORTED) {
			t.Fatalf("read after Close: %v, want ENOTCONN or ECONNABORTED", err)
		}
	case <-time.After(10 * time.Second):
		m.abort()
		t.Fatalf("read after Close hangs")
	}
	if w, err := ConnWaiting(m.conn); err == nil && w != 0 {
		t.Fatalf("connection %d: %d requests waiting after Close", m.conn, w)
	}
}

// TestQueueDeathAborts: a queue thread that dies while the connection
// lives aborts it, so the requests of its CPU fail instead of waiting on
// a ring nobody serves.
func TestQueueDeathAborts(t *testing.T) {
	needURing(t)
	m := mount(t, &testTree{}, true)
	q := m.tr.queues[0]
	q.die.Store(true)
	m.tr.wake(q)
	select {
	case <-q.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("queue 0 did not die")
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(0)
		unix.SchedSetaffinity(0, &set)
		_, err := os.ReadFile(filepath.Join(m.dir, "d", "f"))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("read on CPU 0 succeeded after its queue died")
		}
		t.Logf("read after the queue died: %v", err)
	case <-time.After(10 * time.Second):
		m.abort()
		t.Fatalf("read on CPU 0 hangs after its queue died")
	}
	select {
	case <-m.tr.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("other queues still running after the abort")
	}
}
