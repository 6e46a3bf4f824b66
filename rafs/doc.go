// Package rafs reads RAFS v6 (Nydus) bootstraps.
//
// Open validates a bootstrap strictly before handing it out: superblocks,
// feature bits, the device and blob tables, the prefetch and chunk tables
// must be consistent and lie inside the file. Everything else is decoded
// lazily, per inode, so opening an image of a million inodes costs a few
// reads; every decode checks offsets against the file size and returns an
// error wrapping layout.ErrFormat instead of panicking. No allocation is
// larger than the structure it decodes, which is itself bounded by the size
// of the bootstrap.
//
// The node API (Inode, Lookup, ReadDir, Readlink, Xattrs, Chunks) addresses
// inodes by nid, as the EROFS kernel driver and nydusd do. File data is read
// through a ChunkSource, which returns the verified, uncompressed bytes of
// one chunk: LocalBlobs serves blob files from disk, the storage package
// plugs in caches and registries. FS adapts an image and a chunk source to
// io/fs.
//
// An Image is safe for concurrent use by many goroutines.
package rafs
