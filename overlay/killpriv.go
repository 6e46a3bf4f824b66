package overlay

import (
	"fmt"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// With CAP_HANDLE_KILLPRIV_V2 (see MountOptions) the kernel leaves
// dropping set-user-ID and set-group-ID bits to the server: it asks for it
// with FATTR_KILL_SUIDGID on a truncate by a caller without CAP_FSETID,
// and, before a write by such a caller (which, passed through, the server
// never sees), with a SETATTR that sets nothing. A chown needs nothing
// here: the upper file system drops the bits itself. In return the kernel
// stops refreshing attributes before every chown and, once it has seen a
// file without security.capability, asking for that xattr before every
// write.

// wantsKill reports a SETATTR that asks for set-ID bits to be dropped.
func wantsKill(in *fuse.SetAttrIn) bool {
	return in.Valid&fuse.FATTR_KILL_SUIDGID != 0 || in.Valid&^(fuse.FATTR_FH|fuse.FATTR_LOCKOWNER) == 0
}

// chowns reports a SETATTR that changes the owner: the upper file system
// has dropped the set-ID bits then.
func chowns(in *fuse.SetAttrIn) bool { return in.Valid&(fuse.FATTR_UID|fuse.FATTR_GID) != 0 }

// killedMode is mode without the set-ID bits a write or truncate by an
// unprivileged caller drops (set-group-ID only with group execute, as
// FUSE does), and whether that changes anything; only regular files have
// them dropped.
func killedMode(mode uint32) (uint32, bool) {
	if mode&unix.S_IFMT != unix.S_IFREG {
		return 0, false
	}
	perm := mode & 0o7777
	kept := perm &^ unix.S_ISUID
	if perm&unix.S_IXGRP != 0 {
		kept &^= unix.S_ISGID
	}
	return kept, kept != perm
}

// killAt drops the set-ID bits of the upper object name in dirfd.
func killAt(dirfd int, name string) error {
	st, err := statAt(dirfd, name)
	if err != nil {
		return err
	}
	if perm, ok := killedMode(uint32(st.Mode)); ok {
		if err := chmodAt(dirfd, name, perm); err != nil {
			return fmt.Errorf("drop set-ID bits of %s: %w", name, err)
		}
	}
	return nil
}

// killFd drops the set-ID bits of the open upper file fd.
func killFd(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("drop set-ID bits: %w", err)
	}
	if perm, ok := killedMode(st.Mode); ok {
		if err := unix.Fchmod(fd, perm); err != nil {
			return fmt.Errorf("drop set-ID bits: %w", err)
		}
	}
	return nil
}
