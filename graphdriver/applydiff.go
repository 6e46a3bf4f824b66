package graphdriver

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/pkg/archive"

	"github.com/gonydus/nydus/rafs"
)

// ApplyDiff extracts the uncompressed layer tar r into layer id (created
// with parent) and returns the size of its contents, as overlay2 does. Docker-format whiteouts become
// overlay whiteouts. A nydus bootstrap layer (see the package doc) is kept
// as the layer's bootstrap after it opens as a valid RAFS v6 image.
func (d *Driver) ApplyDiff(ctx context.Context, id, parent string, r io.Reader) (int64, error) {
	dir, err := d.layerDir(id)
	if err != nil {
		return 0, err
	}
	if p, err := d.parentOf(id); err != nil {
		return 0, err
	} else if p != parent {
		return 0, fmt.Errorf("graphdriver: ApplyDiff of %s with parent %q, but it was created with parent %q", id, parent, p)
	}
	diff := filepath.Join(dir, "diff")
	opts := []archive.ApplyOpt{archive.WithConvertWhiteout(archive.OverlayConvertWhiteout)}
	d.mu.Lock()
	uidMaps, gidMaps := d.uidMaps, d.gidMaps
	d.mu.Unlock()
	if len(uidMaps) > 0 || len(gidMaps) > 0 {
		opts = append(opts, archive.WithFilter(func(h *tar.Header) (bool, error) {
			uid, gid := hostID(uidMaps, h.Uid), hostID(gidMaps, h.Gid)
			if uid < 0 || gid < 0 {
				return false, fmt.Errorf("graphdriver: %s: owner %d:%d is outside the user-namespace maps", h.Name, h.Uid, h.Gid)
			}
			h.Uid, h.Gid = uid, gid
			return true, nil
		}))
	}
	// A tar whose first member is under image/ may be a bootstrap layer:
	// its bytes are kept so Diff can give them back unchanged.
	keep := filepath.Join(dir, keptTarName+".tmp")
	br := bufio.NewReaderSize(r, 64<<10)
	r = br
	if hdr, _ := br.Peek(512); mayBeBootstrapLayer(hdr) {
		f, err := os.OpenFile(keep, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return 0, fmt.Errorf("graphdriver: %w", err)
		}
		defer f.Close()
		defer os.Remove(keep) // renamed away when it is one
		r = io.TeeReader(br, f)
	}
	size, err := archive.Apply(ctx, diff, r, opts...)
	if err != nil {
		return 0, fmt.Errorf("graphdriver: apply layer %s: %w", id, err)
	}
	// Drain what the extractor left (the tar's end padding) so dockerd's
	// digest of the stream completes.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return 0, fmt.Errorf("graphdriver: apply layer %s: %w", id, err)
	}
	nydus, err := isBootstrapLayer(diff)
	if err != nil || !nydus {
		return size, err
	}
	if err := adoptBootstrap(dir); err != nil {
		return 0, err
	}
	if _, err := os.Stat(keep); err == nil {
		if err := os.Rename(keep, filepath.Join(dir, nydusDir, keptTarName)); err != nil {
			return 0, fmt.Errorf("graphdriver: %w", err)
		}
	}
	d.log.Info("nydus bootstrap layer", "layer", id)
	return size, nil
}

// keptTarName, in a nydus layer's nydus/ dir, is the layer tar exactly
// as ApplyDiff received it.
const keptTarName = "layer.tar"

// mayBeBootstrapLayer reports whether a tar starting with header block
// hdr may be a bootstrap layer: its first member is image/ or below.
func mayBeBootstrapLayer(hdr []byte) bool {
	if len(hdr) < 100 {
		return false
	}
	name, _, _ := bytes.Cut(hdr[:100], []byte{0})
	n := strings.TrimPrefix(string(name), "./")
	return n == "image" || strings.HasPrefix(n, "image/")
}

// isBootstrapLayer reports whether an extracted layer holds only
// image/image.boot and optionally image/backend.json.
func isBootstrapLayer(diff string) (bool, error) {
	top, err := os.ReadDir(diff)
	if err != nil {
		return false, fmt.Errorf("graphdriver: %w", err)
	}
	if len(top) != 1 || top[0].Name() != "image" || !top[0].IsDir() {
		return false, nil
	}
	ents, err := os.ReadDir(filepath.Join(diff, "image"))
	if err != nil {
		return false, fmt.Errorf("graphdriver: %w", err)
	}
	boot := false
	for _, e := range ents {
		switch {
		case e.Name() == bootstrapName && e.Type().IsRegular():
			boot = true
		case e.Name() == backendName && e.Type().IsRegular():
		default:
			return false, nil
		}
	}
	return boot, nil
}

// adoptBootstrap moves diff/image/* into <dir>/nydus after validating the
// bootstrap, leaving diff empty as the nydusd mountpoint.
func adoptBootstrap(dir string) error {
	src := filepath.Join(dir, "diff", "image")
	if b, err := os.ReadFile(filepath.Join(src, backendName)); err == nil {
		if _, err := parseBackend(b); err != nil {
			return err
		}
	}
	if err := validateBootstrap(filepath.Join(src, bootstrapName)); err != nil {
		return err
	}
	nd := filepath.Join(dir, nydusDir)
	if err := os.Mkdir(nd, 0o700); err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	for _, name := range []string{bootstrapName, backendName} {
		err := os.Rename(filepath.Join(src, name), filepath.Join(nd, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("graphdriver: %w", err)
		}
	}
	if err := os.Remove(src); err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	return ensureLayerView(dir)
}

// validateBootstrap opens path as a RAFS v6 bootstrap.
func validateBootstrap(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	if _, err := rafs.Open(f, st.Size(), rafs.WithInMemoryLimit(0)); err != nil {
		return fmt.Errorf("graphdriver: nydus bootstrap layer is not a valid RAFS v6 image: %w", err)
	}
	return nil
}

// layerViewDir, under a nydus layer's nydus/ dir, holds the files of the
// layer's tar at their paths (image/image.boot, image/backend.json),
// hard links to the adopted ones.
const layerViewDir = "layer"

// ensureLayerView makes <dir>/nydus/layer/image/* of the nydus layer at
// dir (layers adopted before it existed get it at their next Get).
func ensureLayerView(dir string) error {
	nd := filepath.Join(dir, nydusDir)
	img := filepath.Join(nd, layerViewDir, "image")
	if err := os.MkdirAll(img, 0o755); err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	for _, name := range []string{bootstrapName, backendName} {
		dst := filepath.Join(img, name)
		if _, err := os.Lstat(dst); err == nil {
			continue
		}
		if err := os.Link(filepath.Join(nd, name), dst); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("graphdriver: %w", err)
		}
	}
	return nil
}
