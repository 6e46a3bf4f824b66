package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// blobOutput is where a new blob goes: a named file or FIFO (--blob), or a
// temporary file in --blob-dir renamed to the blob id when done.
type blobOutput struct {
	*bufio.Writer
	f       *os.File
	final   string // --blob path, if any
	dir     string // --blob-dir, if any
	tmpName string
}

func openBlobOutput(blob, dir string) (*blobOutput, error) {
	o := &blobOutput{final: blob, dir: dir}
	var err error
	switch {
	case blob != "":
		// O_TRUNC on a FIFO is harmless; a regular file is replaced.
		o.f, err = os.OpenFile(blob, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	default:
		if err = os.MkdirAll(dir, 0o755); err == nil {
			o.f, err = os.CreateTemp(dir, ".blob-*")
		}
		if o.f != nil {
			o.tmpName = o.f.Name()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open blob output: %w", err)
	}
	o.Writer = bufio.NewWriterSize(o.f, 4<<20)
	return o, nil
}

// commit flushes the blob and, with --blob-dir, names it by its id. It
// returns the blob's path.
func (o *blobOutput) commit(id string) (string, error) {
	if err := o.Flush(); err != nil {
		o.abort()
		return "", fmt.Errorf("write blob: %w", err)
	}
	if st, err := o.f.Stat(); err == nil && st.Mode().IsRegular() {
		if err := o.f.Sync(); err != nil {
			o.abort()
			return "", fmt.Errorf("sync blob: %w", err)
		}
	}
	if err := o.f.Close(); err != nil {
		return "", fmt.Errorf("close blob: %w", err)
	}
	if o.tmpName == "" {
		if o.dir != "" {
			// Both --blob and --blob-dir: keep a copy named by id in the dir.
			if err := copyFile(o.final, filepath.Join(o.dir, id)); err != nil {
				return "", err
			}
		}
		return o.final, nil
	}
	dst := filepath.Join(o.dir, id)
	if err := os.Rename(o.tmpName, dst); err != nil {
		return "", fmt.Errorf("name blob: %w", err)
	}
	return dst, nil
}

func (o *blobOutput) abort() {
	o.f.Close()
	if o.tmpName != "" {
		os.Remove(o.tmpName)
	}
}

func copyFile(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil || !st.Mode().IsRegular() {
		return nil // a FIFO cannot be re-read; the caller consumed it
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return writeFileAtomic(dst, data, 0o644)
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it into place.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// outputJSON is the --output-json document of create and merge.
type outputJSON struct {
	Bootstrap  string
	Blobs      []string
	FSVersion  string
	Compressor string
	consumed   time.Duration
}

func writeOutputJSON(path string, o outputJSON) error {
	if path == "" {
		return nil
	}
	if o.Blobs == nil {
		o.Blobs = []string{}
	}
	doc := map[string]any{
		"version":            version + "-gonydus",
		"bootstrap":          o.Bootstrap,
		"blobs":              o.Blobs,
		"external_bootstrap": "",
		"external_blobs":     []string{},
		"trace": map[string]any{
			"consumed_time":     map[string]float64{"total_build": o.consumed.Seconds()},
			"registered_events": map[string]any{},
		},
		"fs_version": o.FSVersion,
		"compressor": o.Compressor,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o644)
}
