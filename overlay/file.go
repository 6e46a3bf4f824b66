package overlay

import (
	"context"
	"errors"
	"io"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

var (
	_ gofs.NodeOpener  = (*node)(nil)
	_ gofs.NodeFlusher = (*node)(nil)
)

// Flush answers ENOSYS, after which the kernel stops sending FLUSH on
// every close: upper files are local (nothing to flush before close) and
// POSIX locks are kept by the kernel, not forwarded.
func (n *node) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno { return syscall.ENOSYS }

// upperFile is an open upper file: every file operation (read, write,
// fsync, allocate, lseek) goes to its descriptor, or, with FUSE
// passthrough, the kernel reads and writes the descriptor itself. The
// kernel refuses to mix passthrough and cached opens of one inode, so a
// file still open through a cached handle (a lowerFile, or an upperFile
// opened while one was) gets cached handles until they are all closed.
type upperFile struct {
	*gofs.LoopbackFile
	n      *node
	cached bool
}

var (
	_ gofs.FilePassthroughFder = (*upperFile)(nil)
	_ gofs.FileReleaser        = (*upperFile)(nil)
)

func (n *node) newUpperFile(fd int) *upperFile {
	u := &upperFile{LoopbackFile: gofs.NewLoopbackFile(fd).(*gofs.LoopbackFile), n: n}
	if n.cachedOpens.Load() > 0 {
		u.cached = true
		n.cachedOpens.Add(1)
	}
	n.addOpened(u)
	return u
}

func (u *upperFile) PassthroughFd() (int, bool) {
	if u.cached {
		return -1, false
	}
	return u.LoopbackFile.PassthroughFd()
}

func (u *upperFile) Release(ctx context.Context) syscall.Errno {
	if u.cached {
		u.n.cachedOpens.Add(-1)
	}
	u.n.removeOpened(u)
	return u.LoopbackFile.Release(ctx)
}

// openFlags are the flags an upper file is opened with: O_APPEND is left
// to the kernel, which sends appending writes at the end of the file (an
// O_APPEND descriptor would put page write-back of mmap'ed files there).
func openFlags(flags uint32) int {
	return int(flags)&^(unix.O_CREAT|unix.O_EXCL|unix.O_NOCTTY|unix.O_APPEND) | unix.O_CLOEXEC | unix.O_NOFOLLOW
}

func wantsWrite(flags uint32) bool {
	return flags&unix.O_ACCMODE != unix.O_RDONLY || flags&unix.O_TRUNC != 0
}

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	// One open of a node at a time: the choice between a cached and a
	// passthrough handle must see the handles opened before it.
	n.openMu.Lock()
	defer n.openMu.Unlock()
	if !wantsWrite(flags) {
		if l := n.lowerOnly(); l != nil {
			return n.openLower(ctx, l)
		}
	}
	var e *entry
	var err error
	if wantsWrite(flags) {
		n.fs.mu.Lock()
		e, err = n.fs.copyUpNode(ctx, n, flags&unix.O_TRUNC == 0)
		n.fs.mu.Unlock()
	} else {
		e, err = n.resolveSelf(ctx)
	}
	if err != nil {
		return nil, 0, n.fs.errno(ctx, "open", err)
	}
	if e.upper != nil {
		a, err := e.at(n.fs)
		if err != nil {
			return nil, 0, n.fs.errno(ctx, "open", err)
		}
		fd, err := unix.Openat(a.dir.fd, a.name, openFlags(flags), 0)
		a.release()
		if err != nil {
			return nil, 0, n.fs.errno(ctx, "open", err)
		}
		return n.newUpperFile(fd), fuse.FOPEN_KEEP_CACHE, 0
	}
	return n.openLower(ctx, e.lower)
}

// lowerOnly returns the lower object of a node that is a lower file with
// nothing in the upper tree, or nil. Such a node's name cannot have
// gained an upper object without the node knowing: a non-directory's
// lower object is kept only when the upper tree had none at lookup, and
// the only way one appears under a name the kernel holds a node for is
// copy-up of that node (markCopiedUp); a whiteout or a rename over the
// name unlinks the node. A read-only open of it needs no look at the
// upper tree.
func (n *node) lowerOnly() Lower {
	if n.copiedUp.Load() || n.StableAttr().Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	if _, parent := n.Parent(); parent == nil && n != n.fs.root {
		return nil // unlinked: the full path reports it
	}
	return n.getLower()
}

// openLower opens the lower object l of n for reading.
func (n *node) openLower(ctx context.Context, l Lower) (gofs.FileHandle, uint32, syscall.Errno) {
	lf, err := l.Open(ctx)
	if err != nil {
		return nil, 0, n.fs.errno(ctx, "open", err)
	}
	n.cachedOpens.Add(1)
	return &lowerFile{n: n, lower: lf}, fuse.FOPEN_KEEP_CACHE, 0
}

// lowerFile is a lower file open for reading. Once the file is copied up
// (through another descriptor) it reads the upper copy, as the kernel's
// overlay does since Linux 4.19.
type lowerFile struct {
	n     *node
	lower LowerFile

	mu    sync.Mutex
	upper int // descriptor of the upper copy, or 0
}

var (
	_ gofs.FileReader   = (*lowerFile)(nil)
	_ gofs.FileReleaser = (*lowerFile)(nil)
	_ gofs.FileFsyncer  = (*lowerFile)(nil)
)

func (l *lowerFile) upperFd() int {
	if !l.n.copiedUp.Load() {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.upper == 0 {
		a, err := l.n.upperAt()
		if err != nil {
			return 0
		}
		fd, err := unix.Openat(a.dir.fd, a.name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		a.release()
		if err != nil {
			return 0
		}
		l.upper = fd
	}
	return l.upper
}

// stat reports the file's attributes once its name is gone.
func (l *lowerFile) stat(out *fuse.Attr) bool {
	if fd := l.upperFd(); fd > 0 {
		return fstatAttr(fd, out)
	}
	st, err := l.n.lowerStat()
	if err != nil {
		return false
	}
	fillLower(st, out)
	return true
}

func (l *lowerFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if fd := l.upperFd(); fd > 0 {
		k, err := unix.Pread(fd, dest, off)
		if err != nil {
			return nil, l.n.fs.errno(ctx, "read", err)
		}
		return readResult(dest[:k]), 0
	}
	k, err := l.lower.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) && k == 0 {
		return nil, l.n.fs.errno(ctx, "read", err)
	}
	return readResult(dest[:k]), 0
}

// readResult answers a READ with bytes in memory. go-fuse's
// ReadResultData first tries splice for every answer: it writes the
// header into a pipe, finds the data is not in a file, and drains the
// pipe again (three system calls per READ for nothing); a vector answer
// is written with one writev.
func readResult(b []byte) fuse.ReadResult { return fuse.ReadResultVector([][]byte{b}) }

func (l *lowerFile) Fsync(ctx context.Context, flags uint32) syscall.Errno { return 0 }

func (l *lowerFile) Release(ctx context.Context) syscall.Errno {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.upper > 0 {
		unix.Close(l.upper)
	}
	l.n.cachedOpens.Add(-1)
	return l.n.fs.errno(ctx, "release", l.lower.Close())
}
