package overlay

import "log/slog"

// Option configures an FS.
type Option func(*config)

type config struct {
	userXattr bool
	logger    *slog.Logger
	inoIndex  uint8
	heldDirs  int
}

// WithUserXattr makes the overlay write and honour user.overlay.* xattrs
// (kernel overlayfs' userxattr option) instead of trusted.overlay.*.
func WithUserXattr() Option { return func(c *config) { c.userXattr = true } }

// WithLogger sets the logger for errors that become EIO.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithInodeIndex puts index in the top byte of every inode number the
// overlay reports, so several overlays (and RAFS mounts, which use
// index<<56 too) can share one FUSE session without their nodes mixing:
// a shared nydusd gives each mount its own index.
func WithInodeIndex(index uint8) Option { return func(c *config) { c.inoIndex = index } }

// WithHeldDirs bounds how many upper directory descriptors the overlay
// keeps open (at least 1; 4096 by default). Upper objects are reached
// through them, never by a path from the upper root; one closed is opened
// again, from the nearest one held, when next needed.
func WithHeldDirs(n int) Option {
	return func(c *config) {
		c.heldDirs = n
		if n == 0 {
			c.heldDirs = -1 // refused by New, not taken for the default
		}
	}
}
