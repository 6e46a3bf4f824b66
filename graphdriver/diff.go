package graphdriver

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/continuity/fs"
)

// changeSource calls fn for every change of layer id against parent and
// releases what it mounted. A layer diffed against its own parent reads
// only its overlay upper dir; anything else (another parent, a nydus
// layer) walks both trees.
func (d *Driver) changeSource(ctx context.Context, id, parent string, fn func(root string, walk func(fs.ChangeFunc) error) error) error {
	dir, err := d.layerDir(id)
	if err != nil {
		return err
	}
	own, err := d.parentOf(id)
	if err != nil {
		return err
	}
	var base string
	if parent != "" {
		if base, err = d.Get(parent, ""); err != nil {
			return err
		}
		defer d.Put(parent)
	}
	if own == parent && isNydusLayer(dir) {
		// A nydus layer's own files are its bootstrap layer's.
		if err := ensureLayerView(dir); err != nil {
			return err
		}
		view := filepath.Join(dir, nydusDir, layerViewDir)
		return fn(view, func(c fs.ChangeFunc) error { return fs.Changes(ctx, "", view, c) })
	}
	if own == parent && !isNydusLayer(dir) {
		upper := filepath.Join(dir, "diff")
		if parent == "" {
			return fn(upper, func(c fs.ChangeFunc) error { return fs.Changes(ctx, "", upper, c) })
		}
		return fn(upper, func(c fs.ChangeFunc) error {
			return fs.DiffDirChanges(ctx, base, upper, fs.DiffSourceOverlayFS, c)
		})
	}
	root, err := d.Get(id, "")
	if err != nil {
		return err
	}
	defer d.Put(id)
	return fn(root, func(c fs.ChangeFunc) error { return fs.Changes(ctx, base, root, c) })
}

// Diff streams layer id's changes against parent as a docker layer tar
// (AUFS-style .wh. whiteouts). A nydus layer against its own parent is
// the tar ApplyDiff received, byte for byte.
func (d *Driver) Diff(ctx context.Context, id, parent string) (io.ReadCloser, error) {
	if _, err := d.layerDir(id); err != nil {
		return nil, err
	}
	if dir, _ := d.layerDir(id); isNydusLayer(dir) {
		if own, err := d.parentOf(id); err == nil && own == parent {
			// The bootstrap layer exactly as it came (docker save, push).
			if f, err := os.Open(filepath.Join(dir, nydusDir, keptTarName)); err == nil {
				return f, nil
			}
		}
	}
	pr, pw := io.Pipe()
	go func() {
		err := d.changeSource(ctx, id, parent, func(root string, walk func(fs.ChangeFunc) error) error {
			cw := archive.NewChangeWriter(pw, root)
			if err := walk(cw.HandleChange); err != nil {
				cw.Close()
				return err
			}
			return cw.Close()
		})
		if err != nil {
			err = fmt.Errorf("graphdriver: diff of %s: %w", id, err)
		}
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// Changes lists layer id's changes against parent.
func (d *Driver) Changes(ctx context.Context, id, parent string) ([]Change, error) {
	var out []Change
	err := d.changeSource(ctx, id, parent, func(_ string, walk func(fs.ChangeFunc) error) error {
		return walk(func(k fs.ChangeKind, p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			switch k {
			case fs.ChangeKindAdd:
				out = append(out, Change{Path: p, Kind: ChangeAdd})
			case fs.ChangeKindModify:
				out = append(out, Change{Path: p, Kind: ChangeModify})
			case fs.ChangeKindDelete:
				out = append(out, Change{Path: p, Kind: ChangeDelete})
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("graphdriver: changes of %s: %w", id, err)
	}
	return out, nil
}

// DiffSize is the size of the regular files layer id adds or changes.
func (d *Driver) DiffSize(ctx context.Context, id, parent string) (int64, error) {
	var n int64
	err := d.changeSource(ctx, id, parent, func(_ string, walk func(fs.ChangeFunc) error) error {
		return walk(func(k fs.ChangeKind, _ string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if (k == fs.ChangeKindAdd || k == fs.ChangeKindModify) && fi != nil && fi.Mode().IsRegular() {
				n += fi.Size()
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("graphdriver: size of %s: %w", id, err)
	}
	return n, nil
}
