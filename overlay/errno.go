package overlay

import (
	"context"
	"errors"
	"io/fs"
	"syscall"
)

// errno maps an error to the errno the kernel gets: the errno it wraps,
// ENOENT for a missing lower name, EINTR for a cancelled request, and EIO
// (logged) for anything else.
func (f *FS) errno(ctx context.Context, op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var en syscall.Errno
	switch {
	case errors.As(err, &en):
		return en
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT
	}
	f.logErr(ctx, op, err)
	return syscall.EIO
}
