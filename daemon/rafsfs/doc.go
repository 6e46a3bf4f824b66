// Package rafsfs serves a RAFS v6 image over FUSE (go-fuse v2), read-only,
// with stable inode numbers derived from nids (hardlinks share one),
// xattrs, symlinks and devices, and file data read through a
// rafs.ChunkSource (the storage chain), verified before use. Errors become
// errnos here and nowhere else.
//
// An image is served two ways. FS.RawRoot serves it as the root of a
// mount with node IDs derived from nids: nothing is kept per inode the
// kernel looks up, so memory does not grow with the inodes the kernel
// holds and FORGET has nothing to free. FS.Root gives go-fuse nodes,
// created per lookup, for an image under another node tree (nydusd's
// pseudo root). Either way the kernel may keep what it was told: entries,
// attributes and negative entries for 2^32 s, and directory listings
// (FOPEN_CACHE_DIR). RawFS counts requests by opcode and, over a tree that
// never changes, has the kernel skip OPENDIR and RELEASEDIR altogether, so
// a second walk of an image costs no request.
package rafsfs
