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

// renameNoReplace moves olddirfd/old to newdirfd/new unless new exists
// (RENAME_NOREPLACE).
func renameNoReplace(olddirfd int, old string, newdirfd int, new string) error {
	err := unix.Renameat2(olddirfd, old, newdirfd, new, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	var st unix.Stat_t
	switch serr := unix.Fstatat(newdirfd, new, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case serr == nil:
		return unix.EEXIST
	case !errors.Is(serr, unix.ENOENT):
		return serr
	}
	return unix.Renameat(olddirfd, old, newdirfd, new)
}

// exchange swaps olddirfd/old and newdirfd/new (RENAME_EXCHANGE); without
// the flag, new is parked under a fresh name in the work directory.
func (f *FS) exchange(olddirfd int, old string, newdirfd int, new string) error {
	err := unix.Renameat2(olddirfd, old, newdirfd, new, unix.RENAME_EXCHANGE)
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	park := f.tmpName()
	if err := unix.Renameat(newdirfd, new, f.workFd, park); err != nil {
		return err
	}
	if err := unix.Renameat(olddirfd, old, newdirfd, new); err != nil {
		if uerr := unix.Renameat(f.workFd, park, newdirfd, new); uerr != nil {
			return errors.Join(err, uerr)
		}
		return err
	}
	return unix.Renameat(f.workFd, park, olddirfd, old)
}
