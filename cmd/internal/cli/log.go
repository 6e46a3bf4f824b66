package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Log is a binary's one log handler: text or JSON records, to stderr or a
// file, at one level. Set it up with NewLog and make it the default
// (slog.SetDefault(l.Logger())).
type Log struct {
	level  slog.Level
	json   bool
	file   *LogFile // nil: stderr
	out    *swappable
	logger *slog.Logger
}

type logConfig struct {
	level     string
	format    string
	file      string
	appendExt bool
	rotate    int64
	stderr    io.Writer
}

// LogOption configures NewLog.
type LogOption func(*logConfig) error

// WithLogLevel sets the level by name: trace and debug, info, warn
// (warning), error (fatal and panic, as logrus users spell them).
func WithLogLevel(name string) LogOption {
	return func(c *logConfig) error {
		if _, err := ParseLevel(name); err != nil {
			return err
		}
		c.level = name
		return nil
	}
}

// WithLogFormat sets the record format: text (the default) or json.
func WithLogFormat(format string) LogOption {
	return func(c *logConfig) error {
		switch strings.ToLower(format) {
		case "", "text", "json":
			c.format = strings.ToLower(format)
			return nil
		}
		return fmt.Errorf("invalid --log-format %q (want text or json)", format)
	}
}

// WithLogFile appends records to path instead of stderr; with addExt, a
// name without an extension gets ".log" (as upstream nydus-image does).
func WithLogFile(path string, addExt bool) LogOption {
	return func(c *logConfig) error {
		c.file, c.appendExt = path, addExt
		return nil
	}
}

// WithLogRotation rotates the log file when a record would take it past
// maxBytes (0: never), keeping LogBackups rotated files.
func WithLogRotation(maxBytes int64) LogOption {
	return func(c *logConfig) error {
		if maxBytes < 0 {
			return fmt.Errorf("log rotation size %d is negative", maxBytes)
		}
		c.rotate = maxBytes
		return nil
	}
}

// ParseRotationMB parses a --log-rotation-size value in MB (0: never) into
// bytes for WithLogRotation.
func ParseRotationMB(v string) (int64, error) {
	mb, err := strconv.ParseInt(v, 10, 64)
	if err != nil || mb < 0 || mb > 1<<20 {
		return 0, fmt.Errorf("invalid --log-rotation-size %q (MB, 0 for none)", v)
	}
	return mb << 20, nil
}

// WithLogStderr replaces stderr (for tests).
func WithLogStderr(w io.Writer) LogOption {
	return func(c *logConfig) error {
		if w == nil {
			return errors.New("log: nil stderr")
		}
		c.stderr = w
		return nil
	}
}

// ParseLevel maps a level name to a slog level (trace is debug).
func ParseLevel(name string) (slog.Level, error) {
	switch strings.ToLower(name) {
	case "trace", "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal", "panic":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid --log-level %q (want trace, debug, info, warn or error)", name)
}

// NewLog sets up a binary's log handler.
func NewLog(opts ...LogOption) (*Log, error) {
	c := logConfig{stderr: os.Stderr}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	level, _ := ParseLevel(c.level)
	l := &Log{level: level, json: c.format == "json", out: &swappable{w: c.stderr}}
	if c.file != "" {
		name := c.file
		if c.appendExt && filepath.Ext(name) == "" {
			name += ".log"
		}
		f, err := OpenLogFile(name, c.rotate)
		if err != nil {
			return nil, err
		}
		l.file, l.out.w = f, f
	}
	ho := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(l.out, ho)
	if l.json {
		h = slog.NewJSONHandler(l.out, ho)
	}
	l.logger = slog.New(h)
	return l, nil
}

// Logger returns the logger writing through the handler.
func (l *Log) Logger() *slog.Logger { return l.logger }

// Handler returns the handler, for bridges from other logging libraries.
func (l *Log) Handler() slog.Handler { return l.logger.Handler() }

// Level returns the configured level.
func (l *Log) Level() slog.Level { return l.level }

// ToStderr reports whether records go to stderr (no log file).
func (l *Log) ToStderr() bool { return l.file == nil }

// RedirectStderr sends the records meant for stderr to w (a progress
// display printing them above its bars) until restore is called. With a
// log file it changes nothing.
func (l *Log) RedirectStderr(w io.Writer) (restore func()) {
	if l.file != nil || w == nil {
		return func() {}
	}
	old := l.out.swap(w)
	return func() { l.out.swap(old) }
}

// ReopenOnHangup reopens the log file on SIGHUP (see the function of that
// name); without a log file it does nothing.
func (l *Log) ReopenOnHangup() (stop func()) {
	if l.file == nil {
		return func() {}
	}
	return ReopenOnHangup(l.file, l.logger)
}

// Close closes the log file, if any.
func (l *Log) Close() error {
	if l.file == nil {
		return nil
	}
	return l.file.Close()
}

// swappable is a writer whose destination can change while records are
// written.
type swappable struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *swappable) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (s *swappable) swap(w io.Writer) io.Writer {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.w
	s.w = w
	return old
}
