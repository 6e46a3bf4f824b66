// Package rafsfs serves a RAFS v6 image over FUSE (go-fuse v2): read-only
// nodes created lazily per lookup, stable inode numbers derived from nids
// (hardlinks share one), xattrs, symlinks and devices, and file data read
// through a rafs.ChunkSource (the storage chain), verified before use.
// Errors become errnos here and nowhere else.
package rafsfs
