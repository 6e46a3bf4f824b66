package overlay

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Upper file systems that take no renameat2 flags (many FUSE file systems,
// bindfs among them, answer EINVAL to any) get the same end state from
// plain renames. The steps are not atomic on the upper file system (the
// overlay is its only writer while mounted); through the overlay nothing
// sees between them, as the kernel holds the directories' locks for the
// rename or unlink request they serve.

// renameNoReplace moves fromDir/from to toDir/to unless to exists
// (RENAME_NOREPLACE).
func renameNoReplace(fromDir int, from string, toDir int, to string) error {
	err := unix.Renameat2(fromDir, from, toDir, to, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	var st unix.Stat_t
	switch serr := unix.Fstatat(toDir, to, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case serr == nil:
		return unix.EEXIST
	case !errors.Is(serr, unix.ENOENT):
		return serr
	}
	return unix.Renameat(fromDir, from, toDir, to)
}

// exchange swaps fromDir/from and toDir/to (RENAME_EXCHANGE); without
// the flag, to is parked under a fresh name in the work directory.
func (f *FS) exchange(fromDir int, from string, toDir int, to string) error {
	err := unix.Renameat2(fromDir, from, toDir, to, unix.RENAME_EXCHANGE)
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	park := f.tmpName()
	if err := unix.Renameat(toDir, to, f.workFd, park); err != nil {
		return err
	}
	if err := unix.Renameat(fromDir, from, toDir, to); err != nil {
		if uerr := unix.Renameat(f.workFd, park, toDir, to); uerr != nil {
			return errors.Join(err, uerr)
		}
		return err
	}
	return unix.Renameat(f.workFd, park, fromDir, from)
}
