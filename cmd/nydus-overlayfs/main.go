// Command nydus-overlayfs is the mount helper containerd runs (through
// mount.fuse3) for mounts of type "fuse.nydus-overlayfs": it drops the
// options meant for Kata and nydusd (extraoption=, io.katacontainers.*)
// and mounts kernel overlayfs with the rest.
//
// Install it on /bin/sh's default PATH (e.g. /usr/local/bin): mount(8)
// removes PATH from the helper's environment.
package main

import (
	"fmt"
	"os"

	"github.com/gonydus/nydus/overlay/mountopt"
	"golang.org/x/sys/unix"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	m, err := mountopt.ParseArgs(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	data := m.DataString()
	if len(data) >= os.Getpagesize()-512 {
		if dir := m.Compact(); dir != "" {
			if err := os.Chdir(dir); err != nil {
				fmt.Fprintf(os.Stderr, "nydus-overlayfs: chdir %s: %v\n", dir, err)
				return 1
			}
			data = m.DataString()
		}
	}
	if err := unix.Mount("overlay", m.Target, "overlay", m.Flags, data); err != nil {
		fmt.Fprintf(os.Stderr, "nydus-overlayfs: mount overlay at %s (options %q): %v\n", m.Target, data, err)
		return 1
	}
	return 0
}
