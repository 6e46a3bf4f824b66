// Package blob reads the tail of RAFS v6 data blobs: the table of contents
// (the rafs.blob.toc section), or, for blobs without one, the tar headers
// that follow each section, walked backwards from the end. It extracts
// sections (the inline bootstrap image.boot, the chunk-info array
// blob.meta with its header, the chunk digests) and verifies each against
// the sha256 its ToC entry records.
package blob
