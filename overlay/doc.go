// Package overlay holds the overlay side of Nydus: the userspace writable
// overlay nydusd serves over FUSE (FS), and mount-option handling for the
// nydus-overlayfs mount helper (package mountopt).
//
// FS merges a read-only lower tree (any Lower: a RAFS image through
// NewRAFSLower, or a directory on disk through NewDirLower) with a writable
// upper directory, following kernel overlayfs without redirect_dir,
// metacopy or index: the topmost name wins, directories merge unless the
// upper one is opaque (xattr trusted.overlay.opaque=y, or user.overlay.opaque
// with WithUserXattr), deletions of lower names leave whiteouts (character
// devices 0/0), and any change to a lower object first copies it up (data,
// mode, owner, times, xattrs), built in work_dir and renamed into place.
// Renaming a directory that exists in the lower tree fails with EXDEV, as
// the kernel does without redirect_dir. The upper directory it writes is a
// valid kernel overlayfs upper directory, and it accepts one the kernel
// wrote.
//
// Errors stay Go errors (wrapping syscall.Errno where the upper file system
// produced one) until the FUSE boundary, where errno maps them.
package overlay
