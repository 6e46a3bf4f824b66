// Command nydus-overlayfs is the mount helper containerd runs (through
// mount.fuse3) for mounts of type "fuse.nydus-overlayfs". Mode 1 (the
// default): it drops the options meant for Kata and nydusd (extraoption=,
// io.katacontainers.*) and mounts kernel overlayfs with the rest. Mode 2
// (nydus.overlay=userspace, or when the kernel has no overlayfs): nydusd
// serves the extraoption's image at the target with its writable overlay
// on upperdir/workdir.
//
// Under the name nydus-overlayfs-userspace (a link) every writable mount
// of one lower is mode 2.
//
// Install it on /bin/sh's default PATH (e.g. /usr/local/bin): mount(8)
// removes PATH from the helper's environment.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/cmd/nydus-overlayfs/internal/mountopt"
	"github.com/gonydus/nydus/daemon/spawn"
)

// userspaceName is a name (a link to this helper) under which every
// mount is mode 2: nydus-snapshotter's mounts carry no nydus.overlay=
// option, but its nydus_overlayfs_path chooses the helper's name.
const userspaceName = "nydus-overlayfs-userspace"

func main() {
	args := os.Args[1:]
	if filepath.Base(os.Args[0]) == userspaceName {
		args = withUserspace(args)
	}
	os.Exit(run(args))
}

// withUserspace adds nydus.overlay=userspace to `overlay TARGET -o OPTS`
// when OPTS describe a writable mount of one lower (the image: what mode 2
// serves) and choose no mode; other mounts, such as the snapshotter's
// read-only views (no upperdir, the view's own directory as a second
// lower), stay kernel overlays.
func withUserspace(args []string) []string {
	if len(args) != 4 || args[2] != "-o" {
		return args
	}
	var upper, oneLower bool
	for _, o := range strings.Split(args[3], ",") {
		switch {
		case strings.HasPrefix(o, "nydus.overlay="):
			return args
		case strings.HasPrefix(o, "upperdir="):
			upper = true
		case strings.HasPrefix(o, "lowerdir="):
			oneLower = !strings.Contains(o, ":")
		}
	}
	if !upper || !oneLower {
		return args
	}
	return []string{args[0], args[1], args[2], args[3] + ",nydus.overlay=userspace"}
}

// Exit codes as mount(8) and its helpers use them.
const (
	exitUsage   = 1  // incorrect invocation
	exitFailure = 32 // mount failure
)

func run(args []string) int {
	if len(args) > 0 && args[0] == keeperCmd {
		return spawn.KeeperMain(args[1:])
	}
	if len(args) > 0 && args[0] == "upgrade" {
		return upgrade(args[1:])
	}
	m, err := mountopt.ParseArgs(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitUsage
	}
	if m.Overlay == "userspace" {
		if err := mountUserspace(m); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return exitFailure
		}
		return 0
	}
	data := m.DataString()
	if len(data) >= os.Getpagesize()-512 {
		if dir := m.Compact(); dir != "" {
			if err := os.Chdir(dir); err != nil {
				fmt.Fprintf(os.Stderr, "nydus-overlayfs: chdir %s: %v\n", dir, err)
				return exitFailure
			}
			data = m.DataString()
		}
	}
	if err := unix.Mount("overlay", m.Target, "overlay", m.Flags, data); err != nil {
		if errors.Is(err, unix.ENODEV) && m.Overlay == "" && m.Extra != nil {
			// No overlayfs in this kernel: nydusd's overlay instead.
			if err := mountUserspace(m); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return exitFailure
			}
			return 0
		}
		fmt.Fprintf(os.Stderr, "nydus-overlayfs: mount overlay at %s (options %q): %v\n", m.Target, data, err)
		return exitFailure
	}
	return 0
}
