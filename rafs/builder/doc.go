// Package builder turns a filesystem tree into RAFS v6: a data blob (chunks
// plus the blob tail: chunk-info array, blob.meta header, chunk digests,
// optional inline bootstrap and ToC) and a bootstrap (the EROFS-compatible
// metadata).
//
// The blob is written strictly sequentially, so it can go to a FIFO or a
// network stream; its id is the sha256 of every byte written. Chunks are
// digested and compressed in parallel and written in input order, so the
// output is reproducible for the same input and options.
package builder
