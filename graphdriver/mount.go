package graphdriver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Get mounts layer id with its parents and returns the root directory of
// the result. A base layer is its diff dir. A nydus layer is a read-only
// overlay of its own files (image/image.boot, image/backend.json, as its
// layer tar held them) over its nydusd mount (the image's tree) and its
// parents: dockerd reassembles a layer's tar (docker save, push) from the
// files Get shows at the paths the tar had, so a saved nydus layer is its
// original bootstrap layer, byte for byte. Each Get is matched by a Put.
func (d *Driver) Get(id, mountLabel string) (string, error) {
	dir, err := d.layerDir(id)
	if err != nil {
		return "", err
	}
	chain, err := d.lowerChain(id)
	if err != nil {
		return "", err
	}
	home, err := d.homeDir()
	if err != nil {
		return "", err
	}
	for _, l := range chain {
		if isNydusLayer(filepath.Join(home, l)) {
			if err := d.ensureNydusd(filepath.Join(home, l)); err != nil {
				return "", err
			}
		}
	}
	nydusTop := isNydusLayer(dir)
	if nydusTop {
		if err := ensureLayerView(dir); err != nil {
			return "", err
		}
	}
	if len(chain) == 1 && !nydusTop {
		d.mu.Lock()
		d.refs[id]++
		d.mu.Unlock()
		return filepath.Join(dir, "diff"), nil
	}
	// Computed before d.mu is taken (it reads layer links).
	data, flags, dataErr := d.overlayData(home, dir, chain)
	d.mu.Lock()
	defer d.mu.Unlock()
	merged := filepath.Join(dir, "merged")
	t, err := mountedAt(merged)
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(t, "fuse") && !userspaceAlive(dir) {
		// Its userspace overlay process is gone (killed, crashed): the
		// mount only answers ENOTCONN. Mount again.
		d.log.Warn("userspace overlay process of the layer is gone, remounting", "layer", id)
		if err := unmountIfMounted(merged); err != nil {
			return "", err
		}
		t = ""
	}
	if t == "" {
		// A mount found in place is kept whatever mode made it (a plugin
		// restarted in another mode).
		kernel := func() error {
			if dataErr != nil {
				return dataErr
			}
			if err := mountOverlayIn(home, merged, data, flags); err != nil {
				return fmt.Errorf("graphdriver: mount overlay for %s: %w", id, err)
			}
			return nil
		}
		if err := d.mountChain(home, dir, chain, kernel); err != nil {
			return "", err
		}
	}
	d.refs[id]++
	return merged, nil
}

// mountChain mounts chain (layer first) at <dir>/merged in the driver's
// container-layer mode; a layer without an upper dir (a nydus layer with
// parents) is always kernel overlayfs, which kernel mounts. Called with
// d.mu held.
func (d *Driver) mountChain(home, dir string, chain []string, kernel func() error) error {
	id := filepath.Base(dir)
	mode := d.containerLayer
	if isNydusLayer(dir) {
		mode = ContainerLayerKernel
	}
	if nl := nydusLayerIn(home, chain[1:]); nl != "" && (len(d.uidMaps) > 0 || len(d.gidMaps) > 0) {
		// nydusd serves an image with its own owners; only the userspace
		// overlay shifts them, as ordinary layers were at ApplyDiff.
		switch {
		case mode == ContainerLayerAuto && !isNydusLayer(dir):
			return d.mountUserspace(home, dir, chain)
		case mode != ContainerLayerUserspace:
			return fmt.Errorf("graphdriver: layer %s is over nydus layer %s, whose owners nydusd cannot shift for user-namespace remapping (dockerd --userns-remap): kernel overlayfs would show them unshifted; use --container-layer userspace or auto", id, nl)
		}
	}
	switch mode {
	case ContainerLayerUserspace:
		return d.mountUserspace(home, dir, chain)
	case ContainerLayerAuto:
		kerr := kernel()
		if kerr == nil {
			return nil
		}
		d.log.Info("kernel overlayfs refused, using the userspace overlay", "layer", id, "err", kerr)
		if err := d.mountUserspace(home, dir, chain); err != nil {
			return errors.Join(kerr, err)
		}
		return nil
	}
	return kernel()
}

// nydusLayerIn returns the first nydus layer of chain, or "".
func nydusLayerIn(home string, chain []string) string {
	for _, l := range chain {
		if isNydusLayer(filepath.Join(home, l)) {
			return l
		}
	}
	return ""
}

// overlayData returns the overlayfs mount data and flags that mount chain
// (layer first) at <dir>/merged: the layer's diff as upper unless it is a
// nydus layer, which is read-only and becomes the top lower. Paths are
// relative to home (see mountOverlayIn).
func (d *Driver) overlayData(home, dir string, chain []string) (string, uintptr, error) {
	var lowers []string
	upper := !isNydusLayer(dir)
	from := 1
	if !upper {
		from = 0
	}
	if !upper {
		lowers = append(lowers, escapeOverlayPath(filepath.Join(filepath.Base(dir), nydusDir, layerViewDir)))
	}
	for _, l := range chain[from:] {
		link, err := d.shortLink(l)
		if err != nil {
			return "", 0, err
		}
		lowers = append(lowers, escapeOverlayPath(link))
	}
	data := "lowerdir=" + strings.Join(lowers, ":")
	if upper {
		id := filepath.Base(dir)
		data += ",upperdir=" + escapeOverlayPath(filepath.Join(id, "diff")) + ",workdir=" + escapeOverlayPath(filepath.Join(id, "work"))
	}
	if len(data) >= os.Getpagesize() {
		return "", 0, fmt.Errorf("graphdriver: overlay mount data of %d layers exceeds a page (%d bytes)", len(chain), len(data))
	}
	if !upper {
		return data, unix.MS_RDONLY, nil
	}
	return data, 0, nil
}

// Put releases a Get; the last one unmounts.
func (d *Driver) Put(id string) error {
	dir, err := d.layerDir(id)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refs[id]--
	if d.refs[id] > 0 {
		return nil
	}
	delete(d.refs, id)
	if err := unmountIfMounted(filepath.Join(dir, "merged")); err != nil {
		return err
	}
	waitUserspaceExit(dir)
	return nil
}

// Cleanup is dockerd's shutdown: every overlay and every nydusd goes.
func (d *Driver) Cleanup() error {
	home, err := d.homeDir()
	if err != nil {
		return nil
	}
	ents, err := os.ReadDir(home)
	if err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	var first error
	for _, e := range ents {
		if !e.IsDir() || e.Name() == linkDir {
			continue
		}
		dir := filepath.Join(home, e.Name())
		if err := unmountIfMounted(filepath.Join(dir, "merged")); err != nil && first == nil {
			first = err
		}
		waitUserspaceExit(dir)
	}
	for _, e := range ents {
		dir := filepath.Join(home, e.Name())
		if e.IsDir() && isNydusLayer(dir) {
			if err := d.stopNydusd(dir); err != nil && first == nil {
				first = err
			}
		}
	}
	d.mu.Lock()
	clear(d.refs)
	d.mu.Unlock()
	return first
}

// Metadata is shown by docker inspect (GraphDriver.Data).
func (d *Driver) Metadata(id string) (map[string]string, error) {
	dir, err := d.layerDir(id)
	if err != nil {
		return nil, err
	}
	chain, err := d.lowerChain(id)
	if err != nil {
		return nil, err
	}
	home, _ := d.homeDir()
	m := map[string]string{"UpperDir": filepath.Join(dir, "diff"), "WorkDir": filepath.Join(dir, "work")}
	if len(chain) > 1 {
		var lowers []string
		for _, l := range chain[1:] {
			lowers = append(lowers, filepath.Join(home, l, "diff"))
		}
		m["LowerDir"] = strings.Join(lowers, ":")
		m["MergedDir"] = filepath.Join(dir, "merged")
	}
	if isNydusLayer(dir) {
		m["NydusBootstrap"] = filepath.Join(dir, nydusDir, bootstrapName)
	}
	return m, nil
}

// escapeOverlayPath escapes the characters overlayfs's mount data gives a
// meaning (a managed plugin's home is named after the plugin reference,
// e.g. /var/lib/docker/gonydus/nydus:dev).
func escapeOverlayPath(p string) string {
	return strings.NewReplacer(`\`, `\\`, ":", `\:`, ",", `\,`).Replace(p)
}
