package graphdriver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Get mounts layer id with its parents and returns the root directory of
// the result. A base layer is its diff dir; a nydus layer's diff dir is
// its nydusd mount. Each Get is matched by a Put.
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
	if len(chain) == 1 {
		d.mu.Lock()
		d.refs[id]++
		d.mu.Unlock()
		return filepath.Join(dir, "diff"), nil
	}
	data, flags, err := d.overlayData(home, dir, chain)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	merged := filepath.Join(dir, "merged")
	t, err := mountedAt(merged)
	if err != nil {
		return "", err
	}
	if t == "" {
		if err := mountOverlayIn(home, merged, data, flags); err != nil {
			return "", fmt.Errorf("graphdriver: mount overlay for %s: %w", id, err)
		}
	}
	d.refs[id]++
	return merged, nil
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
	return unmountIfMounted(filepath.Join(dir, "merged"))
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
