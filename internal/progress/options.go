package progress

import (
	"errors"
	"log/slog"
	"time"
)

// Mode is how progress is shown.
type Mode int

const (
	// Auto draws bars when the output is a terminal, else logs lines.
	Auto Mode = iota
	// Bars draws a bar per tracker on the output.
	Bars
	// Lines logs a line per running tracker every interval.
	Lines
	// Quiet shows nothing.
	Quiet
)

// DefaultInterval is how often Lines mode logs.
const DefaultInterval = 10 * time.Second

type config struct {
	mode     Mode
	interval time.Duration
	log      *slog.Logger
}

// Option configures New.
type Option func(*config) error

// WithMode forces a mode (default Auto).
func WithMode(m Mode) Option {
	return func(c *config) error {
		if m < Auto || m > Quiet {
			return errors.New("progress: unknown mode")
		}
		c.mode = m
		return nil
	}
}

// WithQuiet selects Quiet when q is true (a --quiet flag).
func WithQuiet(q bool) Option {
	return func(c *config) error {
		if q {
			c.mode = Quiet
		}
		return nil
	}
}

// WithInterval sets how often Lines mode logs (default DefaultInterval).
func WithInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return errors.New("progress: interval must be positive")
		}
		c.interval = d
		return nil
	}
}

// WithLogger sets the logger of Lines mode (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("progress: nil logger")
		}
		c.log = l
		return nil
	}
}
