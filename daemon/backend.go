package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/storage"
)

// BackendOpener turns a backend configuration into a blob opener. The
// returned closer releases what the opener holds.
type BackendOpener func(b config.Backend) (storage.OpenFunc, func() error, error)

// localfsConfig is the localfs backend section.
type localfsConfig struct {
	BlobFile string   `json:"blob_file"`
	Dir      string   `json:"dir"`
	AltDirs  []string `json:"alt_dirs"`
}

// OpenLocalfs opens blobs from a directory (and alternative directories)
// or a single blob file. Other backend types are rejected.
func OpenLocalfs(b config.Backend) (storage.OpenFunc, func() error, error) {
	if b.Type != "localfs" {
		return nil, nil, fmt.Errorf("daemon: backend type %q is not available in this build (localfs is)", b.Type)
	}
	var c localfsConfig
	if err := json.Unmarshal(b.Settings, &c); err != nil {
		return nil, nil, fmt.Errorf("daemon: localfs backend: %w", err)
	}
	if c.BlobFile == "" && c.Dir == "" {
		return nil, nil, errors.New("daemon: localfs backend needs dir or blob_file")
	}
	var mu sync.Mutex
	var files []*os.File
	open := func(ctx context.Context, id string) (storage.BlobReader, error) {
		if filepath.Base(id) != id || id == "" || id == "." || id == ".." {
			return nil, fmt.Errorf("daemon: blob id %q is not a file name", id)
		}
		var paths []string
		if c.BlobFile != "" {
			paths = append(paths, c.BlobFile)
		} else {
			for _, d := range append([]string{c.Dir}, c.AltDirs...) {
				paths = append(paths, filepath.Join(d, id))
			}
		}
		var firstErr error
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			mu.Lock()
			files = append(files, f)
			mu.Unlock()
			return storage.ReaderAt(f), nil
		}
		return nil, fmt.Errorf("daemon: localfs blob %s: %w", id, firstErr)
	}
	closeAll := func() error {
		mu.Lock()
		defer mu.Unlock()
		var errs []error
		for _, f := range files {
			errs = append(errs, f.Close())
		}
		files = nil
		return errors.Join(errs...)
	}
	return open, closeAll, nil
}
