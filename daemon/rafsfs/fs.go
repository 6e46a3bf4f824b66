package rafsfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
)

// FS is one RAFS image served over FUSE.
type FS struct {
	img         *rafs.Image
	src         rafs.ChunkSource
	inoBase     uint64
	enableXattr bool
	uid, gid    uint32 // reported when the image records no owners
	stats       *Stats
	noOpen      atomic.Bool
	tailPush    atomic.Int64
}

// EnableNoOpen makes opens zero-message: the first open answers ENOSYS,
// after which the kernel (when it offered FUSE_NO_OPEN_SUPPORT) stops
// sending OPEN and RELEASE and keeps the page cache, as it would with
// FOPEN_KEEP_CACHE. Call it only when the kernel offered the capability.
func (f *FS) EnableNoOpen() { f.noOpen.Store(true) }

// Option configures an FS (New).
type Option func(*fsConfig) error

type fsConfig struct {
	inoBase     uint64
	enableXattr bool
}

// WithInodeBase sets the high bits added to every nid to form st_ino; nydusd
// uses fs_index<<56 (1<<56 for the first mount).
func WithInodeBase(base uint64) Option {
	return func(c *fsConfig) error {
		if base&(1<<56-1) != 0 {
			return fmt.Errorf("rafsfs: inode base %#x has low bits set", base)
		}
		c.inoBase = base
		return nil
	}
}

// WithXattr enables extended attributes (nydusd's enable_xattr).
func WithXattr(on bool) Option { return func(c *fsConfig) error { c.enableXattr = on; return nil } }

// New returns a filesystem for img reading data through src.
func New(img *rafs.Image, src rafs.ChunkSource, opts ...Option) (*FS, error) {
	if img == nil || src == nil {
		return nil, errors.New("rafsfs: image and chunk source are required")
	}
	c := fsConfig{inoBase: 1 << 56, enableXattr: true}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	f := &FS{img: img, src: src, inoBase: c.inoBase, enableXattr: c.enableXattr,
		uid: uint32(os.Geteuid()), gid: uint32(os.Getegid()), stats: newStats()}
	f.tailPush.Store(DefaultTailPush)
	return f, nil
}

// Root returns the root node, for fs.Mount or as a child of a pseudo fs.
func (f *FS) Root() fs.InodeEmbedder { return &node{fs: f, nid: f.img.Root()} }

// RootStableAttr is the stable attribute of the root node.
func (f *FS) RootStableAttr() *fs.StableAttr {
	return &fs.StableAttr{Mode: fuse.S_IFDIR, Ino: f.inoBase | f.img.Root()}
}

// Stats returns the file-access metrics.
func (f *FS) Stats() *Stats { return f.stats }

// MountOptions returns go-fuse options tuned for an immutable image: long
// entry and attribute timeouts, 1 MiB reads, read-only.
func MountOptions(name string) *fs.Options {
	long := cacheTimeout
	return &fs.Options{
		EntryTimeout:    &long,
		AttrTimeout:     &long,
		NegativeTimeout: &long,
		MountOptions: fuse.MountOptions{
			FsName:       name,
			Name:         "rafs",
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			Options:      []string{"ro", "default_permissions"},
			AllowOther:   true,
			DirectMount:  true,
		},
	}
}

// errno maps errors from the image and the storage chain to errnos.
func errno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, rafs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, rafs.ErrNotDir):
		return syscall.ENOTDIR
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT
	}
	return syscall.EIO
}

type node struct {
	fs.Inode
	fs  *FS
	nid uint64

	once sync.Once
	file *file
	ferr error
}

// open prepares the node's file for reading, once; the context of the
// first open must not bound later reads.
func (n *node) open() error {
	n.once.Do(func() {
		n.file, n.ferr = n.fs.openFile(n.nid, n.WriteCache)
	})
	return n.ferr
}

// file is a regular file of the image being read: its chunk map and the
// way to store bytes in the kernel's page cache of the file.
type file struct {
	fs     *FS
	nid    uint64
	reader *rafs.FileReader
	store  func(off int64, data []byte) syscall.Errno
}

func (f *FS) openFile(nid uint64, store func(int64, []byte) syscall.Errno) (*file, error) {
	r, err := f.img.FileReader(context.Background(), f.src, nid)
	if err != nil {
		return nil, err
	}
	return &file{fs: f, nid: nid, reader: r, store: store}, nil
}

var (
	_ fs.NodeLookuper    = (*node)(nil)
	_ fs.NodeGetattrer   = (*node)(nil)
	_ fs.NodeOpener      = (*node)(nil)
	_ fs.NodeReader      = (*node)(nil)
	_ fs.NodeReadlinker  = (*node)(nil)
	_ fs.NodeGetxattrer  = (*node)(nil)
	_ fs.NodeListxattrer = (*node)(nil)
	_ fs.NodeStatfser    = (*node)(nil)
	_ fs.NodeFlusher     = (*node)(nil)
)

func (f *FS) fillAttr(ino *rafs.Inode, out *fuse.Attr) {
	out.Ino = f.inoBase | ino.Nid
	out.Mode = ino.Mode
	out.Nlink = ino.Nlink
	out.Size = ino.Size
	out.Blocks = (ino.Size + 511) / 512
	out.Blksize = 4096
	out.Mtime, out.Mtimensec = ino.Mtime, ino.MtimeNsec
	out.Ctime, out.Ctimensec = ino.Mtime, ino.MtimeNsec
	out.Atime, out.Atimensec = ino.Mtime, ino.MtimeNsec
	out.Rdev = uint32(ino.Rdev)
	if f.img.ExplicitUIDGID() {
		out.Uid, out.Gid = ino.UID, ino.GID
	} else {
		out.Uid, out.Gid = f.uid, f.gid
	}
}

func (n *node) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ino, err := n.fs.img.Inode(n.nid)
	if err != nil {
		return errno(err)
	}
	n.fs.fillAttr(ino, &out.Attr)
	return 0
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	nid, err := n.fs.img.Lookup(n.nid, name)
	if err != nil {
		return nil, errno(err)
	}
	return n.child(ctx, name, nid, out)
}

// child answers the entry name of n, inode nid: its attributes, and the
// node the kernel knows it by, if any, or a new one.
func (n *node) child(ctx context.Context, name string, nid uint64, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ino, err := n.fs.img.Inode(nid)
	if err != nil {
		return nil, errno(err)
	}
	n.fs.fillAttr(ino, &out.Attr)
	if c := n.GetChild(name); c != nil && c.StableAttr().Ino == n.fs.inoBase|nid {
		return c, 0
	}
	return n.NewInode(ctx, &node{fs: n.fs, nid: nid}, fs.StableAttr{Mode: ino.Mode & syscall.S_IFMT, Ino: n.fs.inoBase | nid}), 0
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		return nil, 0, syscall.EROFS
	}
	if n.fs.noOpen.Load() {
		return nil, 0, syscall.ENOSYS
	}
	if err := n.open(); err != nil {
		return nil, 0, errno(err)
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

// Flush answers ENOSYS so the kernel stops sending FLUSH on every close of
// this read-only filesystem.
func (n *node) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return syscall.ENOSYS }

func (n *node) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if err := n.open(); err != nil {
		return nil, errno(err)
	}
	return n.file.read(ctx, dest, off)
}

func (n *file) read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	// A signal to the reader makes the kernel send INTERRUPT, and go-fuse
	// cancels ctx. Finishing the fetch instead (as upstream nydusd does) is
	// what keeps a retried read from starting over: a process whose
	// syscalls are interrupted and restarted (execve in runc init, say)
	// would otherwise never get an answer from a slow or failing backend,
	// whose own timeouts and retry limit still bound the read.
	ctx = context.WithoutCancel(ctx)
	start := time.Now()
	if len(dest) >= spliceMin {
		if rr, ok := n.splice(ctx, dest, off); ok {
			n.fs.stats.read(n.nid, rr.Size(), time.Since(start), false)
			n.tail(ctx, off+int64(rr.Size()))
			return rr, 0
		}
	} else if k, ok, err := n.readLocal(ctx, dest, off); ok {
		if err != nil {
			n.fs.stats.read(n.nid, 0, time.Since(start), true)
			return nil, errno(err)
		}
		n.fs.stats.read(n.nid, k, time.Since(start), false)
		n.tail(ctx, off+int64(k))
		return fuse.ReadResultVector([][]byte{dest[:k]}), 0
	}
	// Bytes in memory go back as a vector: go-fuse tries splice for a
	// ReadResultData answer first (header into a pipe, then drained again,
	// three system calls per READ for nothing).
	k, err := n.reader.ReadAtContext(ctx, dest, off)
	if err != nil && k == 0 && !isEOF(err) {
		n.fs.stats.read(n.nid, 0, time.Since(start), true)
		return nil, errno(err)
	}
	n.fs.stats.read(n.nid, k, time.Since(start), false)
	n.tail(ctx, off+int64(k))
	return fuse.ReadResultVector([][]byte{dest[:k]}), 0
}

// tail pushes the file's tail after a READ ending at end; a failed push is
// counted and otherwise costs only the READ it would have saved.
func (n *file) tail(ctx context.Context, end int64) {
	if err := n.pushTail(ctx, end); err != nil {
		n.fs.stats.pushFailed.Add(1)
	}
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// extentSource is implemented by chunk sources that can point at a cached
// chunk's bytes in a local file (storage.Source).
type extentSource interface {
	CachedExtent(ctx context.Context, blob *layout.BlobEntry, c *layout.ChunkInfo) (*os.File, int64, int64, bool)
}

// splice answers a read whose bytes lie in one run of a cache file (cached,
// uncompressed chunks, adjacent in the file) with that range: the kernel
// moves the bytes (splice) without a copy through this process. Any other
// read takes the normal path.
func (n *file) splice(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, bool) {
	size := n.reader.Size()
	if len(dest) == 0 || off >= size {
		return nil, false
	}
	var buf [1]extent
	list, ok := n.localExtents(ctx, off, min(off+int64(len(dest)), size), buf[:])
	if !ok || len(list) != 1 {
		return nil, false
	}
	rr, err := newCacheRange(list[0].f, list[0].at, int(list[0].n))
	if err != nil {
		return nil, false // closed under us: the normal path reports it
	}
	return rr, true
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, err := n.fs.img.Readlink(n.nid)
	if err != nil {
		return nil, errno(err)
	}
	return []byte(t), 0
}

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return n.fs.getxattr(n.nid, attr, dest)
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return n.fs.listxattr(n.nid, dest)
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	n.fs.statfs(out)
	return 0
}

func (f *FS) getxattr(nid uint64, attr string, dest []byte) (uint32, syscall.Errno) {
	if !f.enableXattr {
		return 0, syscall.ENOTSUP
	}
	v, ok, err := f.img.GetXattr(nid, attr)
	if err != nil {
		return 0, errno(err)
	}
	if !ok {
		return 0, syscall.ENODATA
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func (f *FS) listxattr(nid uint64, dest []byte) (uint32, syscall.Errno) {
	if !f.enableXattr {
		return 0, 0
	}
	xs, err := f.img.Xattrs(nid)
	if err != nil {
		return 0, errno(err)
	}
	var buf []byte
	for _, x := range xs {
		buf = append(append(buf, x.Name...), 0)
	}
	if len(dest) < len(buf) {
		return uint32(len(buf)), syscall.ERANGE
	}
	return uint32(copy(dest, buf)), 0
}

func (f *FS) statfs(out *fuse.StatfsOut) {
	out.Bsize = 512
	out.Frsize = 512
	out.NameLen = 255
	out.Files = f.img.Inodes()
}
