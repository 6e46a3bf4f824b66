package overlay

import (
	"errors"
	"fmt"
	"log/slog"
)

// Option configures an FS; a bad value makes New fail.
type Option func(*config) error

type config struct {
	userXattr bool
	logger    *slog.Logger
	inoIndex  uint8
	heldDirs  int
	handover  bool
}

// WithHandover opens the overlay for a daemon taking a session over from
// another one that may still be running (a live upgrade): the upper and
// work directories are neither locked nor cleaned until Lock, which the
// successor calls once its predecessor exited.
func WithHandover() Option { return func(c *config) error { c.handover = true; return nil } }

// WithUserXattr makes the overlay write and honour user.overlay.* xattrs
// (kernel overlayfs' userxattr option) instead of trusted.overlay.*.
func WithUserXattr() Option { return func(c *config) error { c.userXattr = true; return nil } }

// WithLogger sets the logger for errors that become EIO.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("overlay: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithInodeIndex puts index in the top byte of every inode number the
// overlay reports, so several overlays (and RAFS mounts, which use
// index<<56 too) can share one FUSE session without their nodes mixing:
// a shared nydusd gives each mount its own index.
func WithInodeIndex(index uint8) Option {
	return func(c *config) error { c.inoIndex = index; return nil }
}

// WithHeldDirs bounds how many upper directory descriptors the overlay
// keeps open (at least 1; 4096 by default). Upper objects are reached
// through them, never by a path from the upper root; one closed is opened
// again, from the nearest one held, when next needed.
func WithHeldDirs(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("overlay: held directories %d: must be at least 1", n)
		}
		c.heldDirs = n
		return nil
	}
}
