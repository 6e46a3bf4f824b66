// Package rafsfs serves a RAFS v6 image over FUSE (go-fuse v2), read-only,
// with stable inode numbers derived from nids (hardlinks share one),
// xattrs, symlinks and devices, and file data read through a
// rafs.ChunkSource (the storage chain), verified before use. Errors become
// errnos here and nowhere else.
//
// An image is served three ways. FS.RawRoot serves it as the root of a
// mount with node IDs derived from nids: nothing is kept per inode the
// kernel looks up, so memory does not grow with the inodes the kernel
// holds and FORGET has nothing to free. PseudoRoot serves several images
// as sub-directories of one mount (nydusd's shared mode) the same way: a
// node ID carries its image's index in its top byte, and requests are
// routed by it. FS.Root gives go-fuse nodes, created per lookup, for an
// image under another node tree. Either way the kernel may keep what it
// was told: entries, attributes and negative entries for 2^32 s, and
// directory listings (FOPEN_CACHE_DIR). RawFS counts requests by opcode
// and, over images that never change, has the kernel skip OPENDIR and
// RELEASEDIR altogether, so a second walk of an image costs no request;
// the pseudo root, whose listing changes, invalidates it in the kernel.
package rafsfs
