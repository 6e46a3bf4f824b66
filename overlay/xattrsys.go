package overlay

import (
	"errors"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux 6.13 added getxattrat(2) and listxattrat(2): one system call on
// (directory descriptor, name) where withObj needs three (open an O_PATH
// descriptor, the call through its /proc/self/fd link, close). They are
// tried first; a kernel without them (ENOSYS), or a seccomp filter that
// refuses them (EPERM), sends the caller to withObj.

// xattrArgs is the kernel's struct xattr_args.
type xattrArgs struct {
	value uint64 // address of the buffer
	size  uint32
	flags uint32
}

// errNoAtCall reports that the *xattrat call is not available.
var errNoAtCall = errors.New("xattr *at calls not available")

func atCallMissing(err error) bool {
	return errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM)
}

// getxattrat reads attr of name in dirfd (not following a symlink) into
// dest, or with an empty dest reports the value's size.
func getxattrat(dirfd int, name, attr string, dest []byte) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	a, err := unix.BytePtrFromString(attr)
	if err != nil {
		return 0, err
	}
	args := xattrArgs{size: uint32(len(dest))}
	if len(dest) > 0 {
		// The buffer's address travels inside args, where the compiler
		// cannot see it: pinned, it is on the heap and stays put.
		var pin runtime.Pinner
		pin.Pin(&dest[0])
		defer pin.Unpin()
		args.value = uint64(uintptr(unsafe.Pointer(&dest[0])))
	}
	r, _, e := unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), unix.AT_SYMLINK_NOFOLLOW,
		uintptr(unsafe.Pointer(a)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	if e != 0 {
		if atCallMissing(e) {
			return 0, errNoAtCall
		}
		return 0, e
	}
	return int(r), nil
}

// listxattrat lists the xattr names of name in dirfd (not following a
// symlink) into dest, or with an empty dest reports the list's size.
func listxattrat(dirfd int, name string, dest []byte) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	var buf unsafe.Pointer
	if len(dest) > 0 {
		buf = unsafe.Pointer(&dest[0])
	}
	r, _, e := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), unix.AT_SYMLINK_NOFOLLOW,
		uintptr(buf), uintptr(len(dest)), 0)
	if e != 0 {
		if atCallMissing(e) {
			return 0, errNoAtCall
		}
		return 0, e
	}
	return int(r), nil
}
