package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// LocalfsConfig is the localfs backend section.
type LocalfsConfig struct {
	BlobFile string   `json:"blob_file"`
	Dir      string   `json:"dir"`
	AltDirs  []string `json:"alt_dirs"`
}

// Localfs serves blobs from local files.
type Localfs struct {
	cfg LocalfsConfig
	m   metrics

	mu    sync.Mutex
	files map[string]*os.File // by path: opening a blob again reuses it
}

// NewLocalfs returns a localfs backend.
func NewLocalfs(c LocalfsConfig) (*Localfs, error) {
	if c.BlobFile == "" && c.Dir == "" {
		return nil, errors.New("backend: localfs needs dir or blob_file")
	}
	return &Localfs{cfg: c, files: map[string]*os.File{}}, nil
}

// Type implements Backend.
func (l *Localfs) Type() string { return "localfs" }

// Metrics implements Backend.
func (l *Localfs) Metrics() MetricsSnapshot { return l.m.snapshot("localfs") }

// Open implements Backend: blob_file, else <dir>/<id>, then each alt_dir.
func (l *Localfs) Open(ctx context.Context, id string) (Blob, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var paths []string
	if l.cfg.BlobFile != "" {
		paths = []string{l.cfg.BlobFile}
	} else {
		for _, d := range append([]string{l.cfg.Dir}, l.cfg.AltDirs...) {
			paths = append(paths, filepath.Join(d, id))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.files == nil {
		l.files = map[string]*os.File{} // reopened after Close
	}
	for _, p := range paths {
		if f := l.files[p]; f != nil {
			return &localBlob{f: f, m: &l.m}, nil
		}
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("backend: localfs: %w", err)
		}
		l.files[p] = f
		return &localBlob{f: f, m: &l.m}, nil
	}
	return nil, fmt.Errorf("%w: %s in %v", ErrNotFound, id, paths)
}

// Close implements Backend.
func (l *Localfs) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, f := range l.files {
		errs = append(errs, f.Close())
	}
	l.files = nil
	return errors.Join(errs...)
}

type localBlob struct {
	f *os.File
	m *metrics
}

func (b *localBlob) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	start := time.Now()
	n, err := b.f.ReadAt(p, off)
	var rerr error
	if err != nil && !errors.Is(err, io.EOF) {
		rerr = err
	}
	b.m.record(n, time.Since(start), rerr)
	return n, err
}

func (b *localBlob) Size(ctx context.Context) (int64, error) {
	st, err := b.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// checkID accepts blob ids that are plain file names / digest hex.
func checkID(id string) error {
	if id == "" || id == "." || id == ".." || filepath.Base(id) != id || len(id) > 255 {
		return fmt.Errorf("backend: invalid blob id %q", id)
	}
	return nil
}
