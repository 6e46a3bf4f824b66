package graphdriver

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Driver is the graphdriver. Its methods are the protocol's operations;
// Handler serves them over HTTP.
type Driver struct {
	options // set by New; Init may change containerLayer

	mu         sync.Mutex
	nydusMu    sync.Mutex // serialises nydusd starts and stops
	home       string
	initCalled bool // dockerd called Init in this process
	uidMaps    []IDMap
	gidMaps    []IDMap
	refs       map[string]int // Get minus Put per layer
}

// options is what the Options set.
type options struct {
	nydusd         string
	baseConfig     map[string]any
	insecure       []string // registries plain HTTP may reach
	log            *slog.Logger
	mountTimeout   time.Duration
	runDir         string   // nydusd API sockets
	serverCmd      []string // the userspace overlay process, before its spec file
	keeperCmd      []string // the process supervising each nydusd (spawn.KeeperMain); none if empty
	containerLayer ContainerLayer
	stateFile      string
	restored       initState // read from stateFile
}

// New returns a driver; Init gives it its home.
func New(opts ...Option) (*Driver, error) {
	c := options{nydusd: "nydusd", runDir: "/run/docker-nydus-graphdriver", log: slog.Default(), mountTimeout: 20 * time.Second,
		containerLayer: ContainerLayerKernel}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	d := &Driver{options: c, refs: map[string]int{}}
	d.home, d.uidMaps, d.gidMaps = c.restored.Home, c.restored.UIDMaps, c.restored.GIDMaps
	return d, nil
}

// ErrNotInitialized is returned by operations before Init.
var ErrNotInitialized = errors.New("graphdriver: not initialized")

// Init sets the home directory (dockerd passes <data-root>/<name>) and the
// user-namespace maps. A second Init with the same home is accepted (a
// restarted dockerd). The storage options dockerd passes (--storage-opt)
// may set container-layer=kernel|userspace|auto (optionally prefixed with
// the driver's name and a dot, e.g. nydus.container-layer=userspace),
// which overrides WithContainerLayer.
func (d *Driver) Init(home string, opts []string, uidMaps, gidMaps []IDMap) error {
	if !filepath.IsAbs(home) {
		return fmt.Errorf("graphdriver: home %q is not absolute", home)
	}
	mode := ContainerLayer("")
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		if i := strings.LastIndexByte(k, '.'); i >= 0 {
			k = k[i+1:]
		}
		if strings.ToLower(strings.TrimSpace(k)) != "container-layer" {
			return fmt.Errorf("graphdriver: unknown storage option %q (known: container-layer=kernel|userspace|auto)", o)
		}
		m, err := ParseContainerLayer(v)
		if err != nil {
			return err
		}
		mode = m
	}
	if err := os.MkdirAll(filepath.Join(home, linkDir), 0o700); err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	if err := d.saveState(initState{Home: home, UIDMaps: uidMaps, GIDMaps: gidMaps}); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.home, d.uidMaps, d.gidMaps = home, uidMaps, gidMaps
	d.initCalled = true
	if mode != "" {
		d.containerLayer = mode
	}
	return nil
}

// InitCalled reports whether dockerd has called Init since New.
func (d *Driver) InitCalled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.initCalled
}

// containerLayerMode is the mode new container-layer mounts use.
func (d *Driver) containerLayerMode() ContainerLayer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.containerLayer
}

func (d *Driver) homeDir() (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.home == "" {
		return "", ErrNotInitialized
	}
	return d.home, nil
}

// validID rejects ids that are not a single path element.
func validID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") || id == linkDir {
		return fmt.Errorf("graphdriver: invalid layer id %q", id)
	}
	return nil
}

// layerDir returns <home>/<id> after checking id.
func (d *Driver) layerDir(id string) (string, error) {
	if err := validID(id); err != nil {
		return "", err
	}
	home, err := d.homeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, id), nil
}

// Exists reports whether layer id exists.
func (d *Driver) Exists(id string) bool {
	dir, err := d.layerDir(id)
	if err != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, "diff"))
	return err == nil
}

// Status is shown by docker info.
func (d *Driver) Status() [][2]string {
	home, _ := d.homeDir()
	n, nydus := 0, 0
	if ents, err := os.ReadDir(home); err == nil {
		for _, e := range ents {
			if !e.IsDir() || e.Name() == linkDir {
				continue
			}
			n++
			if isNydusLayer(filepath.Join(home, e.Name())) {
				nydus++
			}
		}
	}
	return [][2]string{
		{"Home", home},
		{"Layers", fmt.Sprint(n)},
		{"Nydus layers", fmt.Sprint(nydus)},
		{"Nydusd", d.nydusd},
		{"Container layer", string(d.containerLayerMode())},
	}
}

// Capabilities of the driver.
func (d *Driver) Capabilities() Capabilities { return Capabilities{} }
