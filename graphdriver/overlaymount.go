package graphdriver

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// mountOverlayIn mounts kernel overlayfs at target with mount data whose
// relative paths (l/<short>, <id>/diff) are resolved from dir, as
// overlay2 does: that keeps the data of 128 layers inside one page
// whatever the home's length. The working directory is changed on a
// thread of its own (unshare(CLONE_FS)), which is thrown away afterwards,
// so the rest of the process never sees it.
func mountOverlayIn(dir, target, data string, flags uintptr) error {
	if len(data) >= os.Getpagesize() {
		return fmt.Errorf("overlay mount data is %d bytes, more than a page", len(data))
	}
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the goroutine ends with the thread locked, so
		// the runtime terminates the thread with its private cwd.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_FS): %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("chdir %s: %w", dir, err)
			return
		}
		if err := unix.Mount("overlay", target, "overlay", flags, data); err != nil {
			errc <- err
			return
		}
		errc <- nil
	}()
	return <-errc
}
