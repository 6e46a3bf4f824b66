package rafsfs

import (
	"fmt"
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// cacheRange is a READ answered from a range of a cache file: go-fuse
// splices it into the reply (it has Seekable) or, on a transport that
// cannot, preads it (Bytes). It holds its own duplicate of the file's
// descriptor until the reply is written (Done): the cache may close the
// file meanwhile (an unmount during the read), and a bare descriptor
// number could by then name another file.
type cacheRange struct {
	fd  int
	off int64
	sz  int
}

var _ fuse.ReadResult = (*cacheRange)(nil)

// newCacheRange duplicates f's descriptor for a reply of sz bytes at off.
// It fails when f is already closed.
func newCacheRange(f *os.File, off int64, sz int) (*cacheRange, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	dup := -1
	var derr error
	// Control holds f's descriptor open while it runs: the duplicate is
	// of this file, never of a number reused after a close.
	if err := rc.Control(func(fd uintptr) {
		dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("rafsfs: dup cache file descriptor: %w", derr)
	}
	return &cacheRange{fd: dup, off: off, sz: sz}, nil
}

// Seekable lets go-fuse splice the range from the file into the reply.
func (r *cacheRange) Seekable() (fd uintptr, off int64, sz int) {
	return uintptr(r.fd), r.off, r.sz
}

// Bytes reads the range (transports that do not splice).
func (r *cacheRange) Bytes(buf []byte) ([]byte, fuse.Status) {
	n := min(len(buf), r.sz)
	k, err := syscall.Pread(r.fd, buf[:n], r.off)
	if err != nil {
		return nil, fuse.ToStatus(err)
	}
	return buf[:k], fuse.OK
}

// Size is the reply's length.
func (r *cacheRange) Size() int { return r.sz }

// Done closes the duplicate; the transport calls it once the reply is
// written.
func (r *cacheRange) Done() {
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}
