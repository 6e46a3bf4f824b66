package graphdriver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/daemon/spawn"
	"github.com/gonydus/nydus/storage/backend"
)

const (
	nydusDir      = "nydus"
	bootstrapName = "image.boot"
	backendName   = "backend.json"
	configName    = "nydusd.json"
	pidName       = "nydusd.pid"
	logName       = "nydusd.log"
	apiSockName   = "api.sock"
)

// isNydusLayer reports whether the layer at dir is a nydus bootstrap layer.
func isNydusLayer(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, nydusDir, bootstrapName))
	return err == nil && st.Mode().IsRegular()
}

// parseBackend reads a layer's image/backend.json: a registry location
// and nothing else (see config.ImageBackend).
func parseBackend(b []byte) (*config.ImageBackend, error) {
	spec, err := config.ParseImageBackend(b)
	if err != nil {
		return nil, fmt.Errorf("graphdriver: image/backend.json: %w", err)
	}
	return spec, nil
}

// operationalKeys are the registry backend settings of the plugin's own
// configuration that apply to whatever registry an image names: they
// carry no secret and point nowhere.
var operationalKeys = []string{"timeout", "connect_timeout", "retry_limit"}

// nydusdConfig builds the nydusd v1 configuration of the layer at dir:
// the plugin's base config, with the layer's backend location and its own
// cache directory.
//
// The image is untrusted. Its backend file may only name a registry
// (scheme, host, repository); everything else about the backend comes
// from the plugin's configuration, and only for the host it was written
// for: credentials, proxy and mirrors configured for registry A never go
// to a registry B that an image names. For a host the plugin's
// configuration does not name, nydusd finds credentials by host in
// docker's config.json and the credential helpers it names (on the
// plugin's PATH), as docker would. Plain HTTP and skipped TLS
// verification are allowed only for loopback hosts and the plugin's
// insecure registries, so an image cannot downgrade a connection.
func (d *Driver) nydusdConfig(dir string) ([]byte, error) {
	cfg := deepCopy(d.baseConfig)
	if cfg == nil {
		cfg = map[string]any{"mode": "direct", "digest_validate": true, "enable_xattr": true}
	}
	device := childMap(cfg, "device")
	be := childMap(device, "backend")
	if b, err := os.ReadFile(filepath.Join(dir, nydusDir, backendName)); err == nil {
		spec, err := parseBackend(b)
		if err != nil {
			return nil, err
		}
		conf, err := d.registryConfig(be, spec.Config)
		if err != nil {
			return nil, err
		}
		be["type"], be["config"] = spec.Type, conf
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("graphdriver: %w", err)
	}
	if be["type"] == nil {
		return nil, errors.New("graphdriver: nydus layer has no image/backend.json and the plugin's nydusd config names no backend")
	}
	cache := childMap(device, "cache")
	if cache["type"] == nil {
		cache["type"] = "blobcache"
	}
	childMap(cache, "config")["work_dir"] = filepath.Join(dir, nydusDir, "cache")
	return json.MarshalIndent(cfg, "", "  ")
}

// registryConfig is the registry backend section for the location an
// image names, given the plugin's own backend section base.
func (d *Driver) registryConfig(base map[string]any, loc config.ImageRegistry) (map[string]any, error) {
	own := map[string]any{}
	if base["type"] == "registry" {
		own = childMap(base, "config")
	}
	ownHost, _ := own["host"].(string)
	conf := map[string]any{}
	if ownHost != "" && strings.EqualFold(ownHost, loc.Host) {
		// The plugin's configuration is about this very registry: all of
		// it applies, the image supplying only the repository.
		for k, v := range own {
			conf[k] = v
		}
		if s, _ := own["scheme"].(string); s != "" {
			loc.Scheme = s
		}
		loc.SkipVerify, _ = own["skip_verify"].(bool)
		loc.Host = ownHost
	} else {
		for _, k := range operationalKeys {
			if v, ok := own[k]; ok {
				conf[k] = v
			}
		}
		if loc.Scheme == "http" && !d.insecureAllowed(loc.Host) {
			return nil, fmt.Errorf("graphdriver: image/backend.json asks for plain HTTP to %s: refused (loopback only; allow the registry with --insecure-registry %s)", loc.Host, loc.Host)
		}
		if loc.SkipVerify && !d.insecureAllowed(loc.Host) {
			return nil, fmt.Errorf("graphdriver: image/backend.json asks to skip TLS verification of %s: refused (loopback only; allow the registry with --insecure-registry %s)", loc.Host, loc.Host)
		}
	}
	conf["scheme"], conf["host"], conf["repo"] = loc.Scheme, loc.Host, loc.Repo
	if loc.SkipVerify {
		conf["skip_verify"] = true
	} else {
		delete(conf, "skip_verify")
	}
	return conf, nil
}

// insecureAllowed reports whether plain HTTP or unverified TLS may be
// used with host: a loopback host, or one the plugin was told to allow.
func (d *Driver) insecureAllowed(host string) bool {
	if backend.IsLoopbackHost(host) {
		return true
	}
	for _, h := range d.insecure {
		if strings.EqualFold(h, host) {
			return true
		}
	}
	return false
}

func childMap(m map[string]any, key string) map[string]any {
	if c, ok := m[key].(map[string]any); ok {
		return c
	}
	c := map[string]any{}
	m[key] = c
	return c
}

func deepCopy(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, _ := json.Marshal(m)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

// ensureNydusd makes sure the layer at dir is served by a live nydusd at
// its diff dir, starting one if needed (a plugin restart finds the old
// one still serving).
func (d *Driver) ensureNydusd(dir string) error {
	d.nydusMu.Lock()
	defer d.nydusMu.Unlock()
	mp := filepath.Join(dir, "diff")
	t, err := mountedAt(mp)
	if err != nil {
		return err
	}
	if strings.HasPrefix(t, "fuse") {
		// The kernel answers stat of the root from its attribute cache even
		// when the daemon is gone: ask about the process instead.
		if d.nydusdAlive(dir) {
			return nil
		}
		d.log.Warn("nydusd of the layer is gone, remounting", "layer", filepath.Base(dir))
		if err := unmountIfMounted(mp); err != nil {
			return err
		}
	}
	return d.startNydusd(dir)
}

func (d *Driver) startNydusd(dir string) error {
	nd := filepath.Join(dir, nydusDir)
	cfg, err := d.nydusdConfig(dir)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(nd, configName)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	sock, err := d.apiSocket(dir)
	if err != nil {
		return err
	}
	mp := filepath.Join(dir, "diff")
	pid, err := spawn.Start(spawn.Nydusd{Binary: d.nydusd, Mountpoint: mp, LogFile: filepath.Join(nd, logName), Timeout: d.mountTimeout,
		Args: []string{"--config", cfgPath, "--bootstrap", filepath.Join(nd, bootstrapName), "--mountpoint", mp, "--apisock", sock, "--log-level", "info"}})
	if err != nil {
		return fmt.Errorf("graphdriver: layer %s: %w", filepath.Base(dir), err)
	}
	if err := os.WriteFile(filepath.Join(nd, pidName), []byte(strconv.Itoa(pid)), 0o600); err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	d.log.Info("nydusd started", "layer", filepath.Base(dir), "pid", pid)
	return nil
}

// stopNydusd stops the layer's nydusd and removes its mount.
func (d *Driver) stopNydusd(dir string) error {
	d.nydusMu.Lock()
	defer d.nydusMu.Unlock()
	nd := filepath.Join(dir, nydusDir)
	mp := filepath.Join(dir, "diff")
	if b, err := os.ReadFile(filepath.Join(nd, pidName)); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && isNydusdOf(pid, mp) {
			unix.Kill(pid, unix.SIGTERM)
			for i := 0; i < 200 && processAlive(pid); i++ {
				time.Sleep(25 * time.Millisecond)
			}
			if processAlive(pid) {
				unix.Kill(pid, unix.SIGKILL)
			}
		}
		os.Remove(filepath.Join(nd, pidName))
	}
	if t, err := os.Readlink(filepath.Join(nd, apiSockName)); err == nil {
		os.Remove(t)
	}
	return unmountIfMounted(mp)
}

// isNydusdOf checks that pid is a nydusd serving mountpoint mp (not a
// recycled pid).
func isNydusdOf(pid int, mp string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	for i, a := range args {
		if a == "--mountpoint" && i+1 < len(args) && args[i+1] == mp {
			return true
		}
	}
	return false
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie has exited: field 3 is its state.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// apiSocket returns the path of the nydusd API socket of the layer at dir:
// a short path in the runtime dir (a unix socket path is limited to 107
// bytes), reachable as <dir>/nydus/api.sock through a symlink.
func (d *Driver) apiSocket(dir string) (string, error) {
	id := filepath.Base(dir)
	short, err := d.shortLink(id)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(d.runDir, 0o700); err != nil {
		return "", fmt.Errorf("graphdriver: %w", err)
	}
	sock := filepath.Join(d.runDir, filepath.Base(short)+".sock")
	os.Remove(sock)
	link := filepath.Join(dir, nydusDir, apiSockName)
	os.Remove(link)
	if err := os.Symlink(sock, link); err != nil {
		return "", fmt.Errorf("graphdriver: %w", err)
	}
	return sock, nil
}

// nydusdAlive reports whether the nydusd recorded for the layer at dir
// still runs and serves its diff dir.
func (d *Driver) nydusdAlive(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, nydusDir, pidName))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && isNydusdOf(pid, filepath.Join(dir, "diff")) && processAlive(pid)
}
