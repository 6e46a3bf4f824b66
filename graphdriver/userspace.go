package graphdriver

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/daemon/spawn"
	"github.com/gonydus/nydus/internal/fuseuring"
	"github.com/gonydus/nydus/overlay"
)

// ContainerLayer says how a layer with a writable upper dir (a
// container's, or its -init layer) is mounted over its parents.
type ContainerLayer string

// Container-layer modes.
const (
	// ContainerLayerKernel mounts kernel overlayfs, as overlay2 does.
	ContainerLayerKernel ContainerLayer = "kernel"
	// ContainerLayerUserspace serves the layer from a FUSE process running
	// the userspace writable overlay (package overlay) over the parent
	// layers; the upper dir it writes is a kernel overlayfs upper dir.
	ContainerLayerUserspace ContainerLayer = "userspace"
	// ContainerLayerAuto mounts kernel overlayfs and falls back to the
	// userspace overlay where the kernel refuses (inside a user
	// namespace, an upper file system overlayfs does not support, nested
	// overlays).
	ContainerLayerAuto ContainerLayer = "auto"
)

// ParseContainerLayer validates a mode name.
func ParseContainerLayer(s string) (ContainerLayer, error) {
	switch m := ContainerLayer(strings.ToLower(strings.TrimSpace(s))); m {
	case ContainerLayerKernel, ContainerLayerUserspace, ContainerLayerAuto:
		return m, nil
	}
	return "", fmt.Errorf("graphdriver: container layer mode %q is not kernel, userspace or auto", s)
}

// userspaceSpec is what the userspace overlay process serves; it is
// written to <layer>/userspace.json.
type userspaceSpec struct {
	Lowers     []string `json:"lowers"` // topmost first
	Upper      string   `json:"upper"`
	Work       string   `json:"work"`
	Mountpoint string   `json:"mountpoint"`
	Shift      *idShift `json:"shift,omitempty"`
}

const (
	userspaceSpecName = "userspace.json"
	userspacePidName  = "userspace.pid"
	userspaceLogName  = "userspace.log"
)

// mountUserspace starts the userspace overlay process for the layer at
// dir over the layers of chain[1:] and waits until it has mounted
// <dir>/merged.
func (d *Driver) mountUserspace(home, dir string, chain []string) error {
	if len(d.serverCmd) == 0 {
		return errors.New("graphdriver: no userspace overlay server configured (WithOverlayServer)")
	}
	spec := userspaceSpec{Upper: filepath.Join(dir, "diff"), Work: filepath.Join(dir, "work"), Mountpoint: filepath.Join(dir, "merged")}
	shift := &idShift{UIDMaps: d.uidMaps, GIDMaps: d.gidMaps}
	for _, l := range chain[1:] {
		spec.Lowers = append(spec.Lowers, filepath.Join(home, l, "diff"))
		shift.Layers = append(shift.Layers, isNydusLayer(filepath.Join(home, l)))
	}
	if len(d.uidMaps) > 0 || len(d.gidMaps) > 0 {
		spec.Shift = shift
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	specPath := filepath.Join(dir, userspaceSpecName)
	if err := os.WriteFile(specPath, b, 0o600); err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	args := append(append([]string{}, d.serverCmd[1:]...), specPath)
	pid, err := spawn.Start(spawn.Nydusd{Binary: d.serverCmd[0], Args: args, Mountpoint: spec.Mountpoint,
		LogFile: filepath.Join(dir, userspaceLogName), Timeout: d.mountTimeout})
	if err != nil {
		return fmt.Errorf("graphdriver: userspace overlay of %s: %w", filepath.Base(dir), err)
	}
	return os.WriteFile(filepath.Join(dir, userspacePidName), []byte(strconv.Itoa(pid)), 0o600)
}

// waitUserspaceExit waits (bounded) for the userspace overlay process of
// the layer at dir to exit after its mount went, so the next mount finds
// the upper and work dirs unlocked.
func waitUserspaceExit(dir string) {
	pidFile := filepath.Join(dir, userspacePidName)
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	defer os.Remove(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !isServerOf(pid, filepath.Join(dir, userspaceSpecName)) {
		return
	}
	for i := 0; i < 200 && processAlive(pid); i++ {
		time.Sleep(25 * time.Millisecond)
	}
	if processAlive(pid) {
		unix.Kill(pid, unix.SIGKILL)
	}
}

// userspaceAlive reports whether the userspace overlay process recorded
// for the layer at dir still runs.
func userspaceAlive(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, userspacePidName))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && isServerOf(pid, filepath.Join(dir, userspaceSpecName)) && processAlive(pid)
}

// isServerOf checks that pid is the userspace overlay process serving
// spec (not a recycled pid).
func isServerOf(pid int, spec string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	for _, a := range strings.Split(string(b), "\x00") {
		if a == spec {
			return true
		}
	}
	return false
}

// userspaceAsyncOps are the requests the userspace overlay process serves
// on goroutines of their own: those that may wait long (reads of a lazily
// fetched lower file, copy-up at open, syncs, lock waits). The rest, the
// metadata operations a container's writes are made of, are served inline
// on one thread (fuseuring.DevLoop).
var userspaceAsyncOps = []string{"OPEN", "READ", "WRITE", "FSYNC", "FSYNCDIR", "SETLKW", "FALLOCATE", "COPY_FILE_RANGE", "LSEEK"}

// mountUserspace mounts ovl at dir and serves it from /dev/fuse inline
// (fuseuring.ServeDevice), or with go-fuse's own loop (loop nil) where
// that cannot start.
func mountUserspace(dir string, ovl *overlay.FS, opts *gofs.Options, log *slog.Logger) (*fuse.Server, *fuseuring.DevLoop, error) {
	raw := gofs.NewNodeFS(ovl.Root(), opts)
	srv, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		return nil, nil, err
	}
	loop, err := fuseuring.ServeDevice(srv, raw, fuseuring.WithLogger(log), fuseuring.WithAsyncOps(userspaceAsyncOps...))
	if err != nil {
		log.Warn("serving with go-fuse's loop", "err", err)
		go srv.Serve()
	}
	if err := srv.WaitMount(); err != nil {
		return nil, nil, err
	}
	return srv, loop, nil
}

// ServeUserspace is the userspace overlay process: it mounts the overlay
// described by the spec file at its mountpoint and serves it until the
// mount goes (Put's unmount) or SIGTERM/SIGINT. The plugin runs it as a
// process of its own so containers keep their root file systems across
// plugin restarts.
func ServeUserspace(specPath string, log *slog.Logger) error {
	b, err := os.ReadFile(specPath)
	if err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	var spec userspaceSpec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fmt.Errorf("graphdriver: %s: %w", specPath, err)
	}
	if len(spec.Lowers) == 0 || spec.Upper == "" || spec.Work == "" || spec.Mountpoint == "" {
		return fmt.Errorf("graphdriver: %s: lowers, upper, work and mountpoint are required", specPath)
	}
	lower, err := newStackLower(spec.Lowers, spec.Shift)
	if err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	ovl, err := overlay.New(lower, spec.Upper, spec.Work, overlay.WithLogger(log))
	if err != nil {
		return fmt.Errorf("graphdriver: %w", err)
	}
	defer ovl.Close()
	opts := overlay.MountOptions("nydus-graphdriver")
	opts.RootStableAttr = ovl.RootStableAttr()
	srv, loop, err := mountUserspace(spec.Mountpoint, ovl, opts, log)
	if err != nil {
		return fmt.Errorf("graphdriver: mount %s: %w", spec.Mountpoint, err)
	}
	log.Info("userspace overlay serving", "mountpoint", spec.Mountpoint, "layers", len(spec.Lowers), "inline", loop != nil)
	if loop != nil {
		defer func() { log.Info("requests served", "total", loop.Requests(), "ops", loop.Ops()) }()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	select {
	case <-done:
		log.Info("mount gone, exiting", "mountpoint", spec.Mountpoint)
	case s := <-sig:
		log.Info("stopping", "signal", s.String())
		if err := srv.Unmount(); err != nil {
			unix.Unmount(spec.Mountpoint, unix.MNT_DETACH)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}
	return nil
}
