// Package layout defines the on-disk structures of RAFS v6 (the Nydus
// image format, a superset of EROFS) and of the Nydus data-blob tail.
//
// Every type here is a plain value with Marshal/Unmarshal methods over byte
// slices of a fixed size. The package performs no I/O: readers and writers
// in sibling packages decide where the bytes live. Validation that needs
// only one structure (magic numbers, feature bits, field ranges) lives next
// to the structure; checks across structures belong to the reader.
//
// All integers are little-endian. Offsets and sizes follow the fact sheet
// of the upstream format (RAFS v6 since nydus 2.2).
package layout
