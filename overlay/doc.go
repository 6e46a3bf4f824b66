// Package overlay is the userspace writable overlay nydusd serves over
// FUSE (FS). The nydus-overlayfs mount helper's option handling lives
// with the helper, in cmd/nydus-overlayfs/internal/mountopt.
//
// FS merges a read-only lower tree (any Lower: a RAFS image through
// NewRAFSLower, or a directory on disk through NewDirLower) with a writable
// upper directory, following kernel overlayfs mounted with
// redirect_dir=nofollow, index=off, metacopy=off:
//
//   - the topmost name wins; directories merge unless the upper one is
//     opaque (xattr trusted.overlay.opaque=y, or user.overlay.opaque=y with
//     WithUserXattr; user.fuseoverlayfs.opaque=y is honoured too);
//   - removing a name the lower tree has leaves a whiteout (a character
//     device 0/0); a directory made over a whiteout is opaque;
//   - any change to a lower object first copies it up (data, xattrs,
//     owner, mode, times; parents first, their times kept): it is built in
//     <work_dir>/work and renamed into place, and replacements of whiteouts
//     and of upper objects are RENAME_EXCHANGEs through the work dir, as
//     the kernel does;
//   - renaming a directory that has a lower part fails with EXDEV; other
//     renames copy up and leave a whiteout where a lower object showed
//     through (RENAME_WHITEOUT), and a directory moved into a merged one is
//     made opaque; RENAME_NOREPLACE and RENAME_EXCHANGE are supported;
//   - hard links (a copied-up lower link is no longer linked to the other
//     lower names), symlinks, device nodes and FIFOs, xattrs, truncate,
//     O_APPEND, O_TMPFILE, shared writable mmap, fsync, statfs (the upper
//     file system's), POSIX and flock locks (kept by the kernel), and
//     readdir with stable offsets (a snapshot per open directory, taken
//     again on rewind);
//   - a merged directory reports one link, as on the kernel.
//
// The upper directory it writes is a valid kernel overlayfs upper
// directory, and it accepts one the kernel wrote (kernel bookkeeping xattrs
// such as trusted.overlay.origin and impure are ignored). It does not
// follow trusted.overlay.redirect or honour trusted.overlay.metacopy, so an
// upper directory written with redirect_dir=on or metacopy=on is not
// supported, as the kernel's with redirect_dir=nofollow does not follow
// redirects either.
//
// Known difference, from FUSE: a set-group-ID file without group execute
// permission written by a user outside its group keeps its set-group-ID
// bit (the kernel's overlay drops it; FUSE drops set-group-ID only with
// group execute, and passthrough writes never reach the server).
//
// Inode numbers: upper objects report their upper inode numbers, lower
// objects theirs with bit 55 set, and an object copied up while mounted
// keeps its number, except a name of a hard-linked lower file: its names
// share the lower number and link count (so tar and docker export find
// the link), and once copied up a name reports its upper number, as on
// the kernel without index=on (known difference: while a descriptor of
// the node that was copied up is open, fstat, and stat of its name, show
// the lower number with one link, as go-fuse fixes a node's number for
// its life; one link keeps tar from taking it for a hard link); the top
// byte is the overlay's WithInodeIndex, so
// several overlays can share one FUSE session. Where the kernel offers FUSE passthrough, reads,
// writes and mmap of upper files bypass the server.
//
// Upper objects are reached from held descriptors of their directories,
// one name at a time and never through a symlink, not by paths joined up
// from the upper root (held.go): paths deeper than PATH_MAX work as on the
// kernel, and a container swapping a directory for a symlink cannot lead
// the daemon out of the upper directory. At most WithHeldDirs directory
// descriptors stay open.
//
// Changes of the upper tree are serialised by one lock; data I/O is not.
// Errors stay Go errors (wrapping syscall.Errno where the upper file system
// produced one) until the FUSE boundary, where errno maps them.
package overlay
