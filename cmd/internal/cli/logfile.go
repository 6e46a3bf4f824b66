package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
)

// LogBackups is how many rotated files (<path>.1 newest … <path>.N) a
// LogFile keeps.
const LogBackups = 5

// LogFile is an append-only log file that, when a write would take it
// past maxSize bytes, is renamed to <path>.1 (older ones shift up to
// <path>.LogBackups, the oldest is dropped) and started anew. One Write is
// one log record and is never split. maxSize <= 0 never rotates. Reopen
// starts writing to whatever file is at path now, for rotation by an
// outside tool (logrotate renames the file, then sends SIGHUP).
type LogFile struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	size int64
}

// OpenLogFile opens (appends to) path, creating its directory as
// upstream nydusd does: nydus-snapshotter passes a --log-file in a
// directory it has not created.
func OpenLogFile(path string, maxSize int64) (*LogFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	r := &LogFile{path: path, max: maxSize}
	if err := r.open(); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return r, nil
}

// Path returns the file's path.
func (r *LogFile) Path() string { return r.path }

func (r *LogFile) open() error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r.f, r.size = f, st.Size()
	return nil
}

func (r *LogFile) rotate() error {
	if err := r.f.Close(); err != nil {
		return err
	}
	r.f = nil
	for i := LogBackups - 1; i >= 1; i-- {
		_ = os.Rename(r.path+"."+strconv.Itoa(i), r.path+"."+strconv.Itoa(i+1))
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return err
	}
	return r.open()
}

// Write appends p, rotating first when p would not fit.
func (r *LogFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		if err := r.open(); err != nil {
			return 0, fmt.Errorf("log file: %w", err)
		}
	}
	if r.max > 0 && r.size > 0 && r.size+int64(len(p)) > r.max {
		if err := r.rotate(); err != nil {
			return 0, fmt.Errorf("log rotation: %w", err)
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// Reopen closes the file and opens path again (creating it when it was
// renamed away), so that the next record goes to the file now at path.
func (r *LogFile) Reopen() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
	if err := r.open(); err != nil {
		return fmt.Errorf("reopen log file: %w", err)
	}
	return nil
}

// Close closes the current file.
func (r *LogFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// ReopenedMessage is the record a reopened log file starts with.
const ReopenedMessage = "log file reopened on SIGHUP"

// ReopenOnHangup reopens f whenever the process receives SIGHUP (as
// logrotate's postrotate scripts send) and logs that it did to log, so
// the first record in the new file says so. stop ends it (SIGHUP then
// terminates the process again, its default).
func ReopenOnHangup(f *LogFile, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-hup:
				if err := f.Reopen(); err != nil {
					log.Error("SIGHUP", "err", err)
					continue
				}
				log.Info(ReopenedMessage, "path", f.Path())
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(hup)
			close(done)
		})
	}
}
