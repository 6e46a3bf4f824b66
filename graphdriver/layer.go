package graphdriver

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// linkDir holds the short symlinks to layers' diff dirs.
const linkDir = "l"

// maxDepth bounds the ancestors of a layer, as overlay2 does: an image of
// up to 128 layers still takes a container layer on top.
const maxDepth = 128

// Create makes a read-only (image) layer; CreateReadWrite makes a
// container's layer. Both get a diff dir ready for ApplyDiff or for use as
// an overlay upper.
func (d *Driver) Create(id, parent string, storageOpt map[string]string) error {
	return d.create(id, parent, storageOpt)
}

// CreateReadWrite makes a container's writable layer (and its -init layer).
func (d *Driver) CreateReadWrite(id, parent string, storageOpt map[string]string) error {
	return d.create(id, parent, storageOpt)
}

func (d *Driver) create(id, parent string, storageOpt map[string]string) (err error) {
	for k := range storageOpt {
		return fmt.Errorf("graphdriver: storage option %q is not supported", k)
	}
	dir, err := d.layerDir(id)
	if err != nil {
		return err
	}
	if parent != "" {
		if err := validID(parent); err != nil {
			return err
		}
		if !d.Exists(parent) {
			return fmt.Errorf("graphdriver: parent layer %s does not exist", parent)
		}
		chain, err := d.lowerChain(parent)
		if err != nil {
			return err
		}
		if len(chain) > maxDepth {
			return fmt.Errorf("graphdriver: layer %s would have more than %d ancestors", id, maxDepth)
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("graphdriver: layer %s already exists", id)
		}
		return fmt.Errorf("graphdriver: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	uid, gid := d.rootPair()
	for _, sub := range []string{"diff", "work", "merged"} {
		p := filepath.Join(dir, sub)
		if err := os.Mkdir(p, 0o755); err != nil {
			return fmt.Errorf("graphdriver: %w", err)
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("graphdriver: %w", err)
		}
	}
	if parent != "" {
		if err := os.WriteFile(filepath.Join(dir, "parent"), []byte(parent), 0o600); err != nil {
			return fmt.Errorf("graphdriver: %w", err)
		}
	}
	short, err := newShortName()
	if err != nil {
		return err
	}
	home, _ := d.homeDir()
	if err := os.Symlink(filepath.Join("..", id, "diff"), filepath.Join(home, linkDir, short)); err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "link"), []byte(short), 0o600); err != nil {
		os.Remove(filepath.Join(home, linkDir, short))
		return fmt.Errorf("graphdriver: %w", err)
	}
	return nil
}

func newShortName() (string, error) {
	var b [15]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("graphdriver: %w", err)
	}
	return base32.StdEncoding.EncodeToString(b[:]), nil
}

// parentOf returns the parent id of layer id ("" for a base layer).
func (d *Driver) parentOf(id string) (string, error) {
	dir, err := d.layerDir(id)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, "parent"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("graphdriver: %w", err)
	}
	p := strings.TrimSpace(string(b))
	return p, validID(p)
}

// lowerChain returns id and its ancestors, nearest first.
func (d *Driver) lowerChain(id string) ([]string, error) {
	var chain []string
	for cur := id; cur != ""; {
		if len(chain) > maxDepth {
			return nil, fmt.Errorf("graphdriver: layer %s has more than %d ancestors (a loop?)", id, maxDepth)
		}
		if !d.Exists(cur) {
			return nil, fmt.Errorf("graphdriver: layer %s (in the chain of %s) does not exist", cur, id)
		}
		chain = append(chain, cur)
		p, err := d.parentOf(cur)
		if err != nil {
			return nil, err
		}
		cur = p
	}
	return chain, nil
}

// shortLink returns l/<short> for layer id, relative to home.
func (d *Driver) shortLink(id string) (string, error) {
	dir, err := d.layerDir(id)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, "link"))
	if err != nil {
		return "", fmt.Errorf("graphdriver: layer %s: %w", id, err)
	}
	return filepath.Join(linkDir, strings.TrimSpace(string(b))), nil
}

// Remove deletes layer id: its mounts, its nydusd, its files.
func (d *Driver) Remove(id string) error {
	dir, err := d.layerDir(id)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unmountIfMounted(filepath.Join(dir, "merged")); err != nil {
		return err
	}
	waitUserspaceExit(dir)
	if isNydusLayer(dir) {
		if err := d.stopNydusd(dir); err != nil {
			return err
		}
	}
	d.mu.Lock()
	delete(d.refs, id)
	d.mu.Unlock()
	if link, err := d.shortLink(id); err == nil {
		home, _ := d.homeDir()
		os.Remove(filepath.Join(home, link))
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("graphdriver: remove %s: %w", id, err)
	}
	return nil
}

// rootPair is the host uid/gid of the container's root.
func (d *Driver) rootPair() (int, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return hostID(d.uidMaps, 0), hostID(d.gidMaps, 0)
}

// hostID maps a container id through m (identity when m is empty; -1
// when unmapped).
func hostID(m []IDMap, id int) int {
	if len(m) == 0 {
		return id
	}
	for _, r := range m {
		if id >= r.ContainerID && id < r.ContainerID+r.Size {
			return r.HostID + id - r.ContainerID
		}
	}
	return -1
}
