package overlay

import "log/slog"

// Option configures an FS.
type Option func(*config)

type config struct {
	userXattr bool
	logger    *slog.Logger
}

// WithUserXattr makes the overlay write and honour user.overlay.* xattrs
// (kernel overlayfs' userxattr option) instead of trusted.overlay.*.
func WithUserXattr() Option { return func(c *config) { c.userXattr = true } }

// WithLogger sets the logger for errors that become EIO.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }
