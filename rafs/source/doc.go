// Package source fills an in-memory RAFS tree from a build input: a
// directory, or a tar stream (plain, gzip or zstd, detected by magic),
// read strictly sequentially so a layer never has to be unpacked to disk.
// File data goes straight to a FileWriter (the blob writer) as it is read.
// Names come only from the input: nothing on the host filesystem is
// touched while building from a tar, and hostile names (escaping "..",
// paths through symlinks) are rejected with clear errors.
package source
