// Package targzref builds and reads RAFS v6 images of unmodified OCI gzip
// layers in upstream Nydus's "targz-ref" (OCI-ref, zran) format: the data
// blob is the original .tar.gz, whose sha256 is the blob id; the files of
// the tar are cut into chunks of the uncompressed stream, and a small
// "RAFS blob" carries the blob.meta (the chunk-info v2 array followed by
// the zran inflate contexts and their 32 KiB dictionaries, zstd
// compressed, with its 4096-byte header), the chunk digests, an optional
// inline bootstrap and the ToC. The bootstrap's blob entry records the
// RAFS blob's sha256 and size (blob_meta_digest, blob_meta_size), which
// is how nydusd finds it in the registry.
//
// Build reads the layer once as a stream: the zran generator inflates it
// and opens contexts (spaced by Config.Contexts, by default about every
// 2 MiB of compressed input or 8 MiB of output, half upstream's index
// size), the tar parser cuts files into chunks, and the chunks are
// digested on a second goroutine. Meta decodes a RAFS blob's
// blob.meta; Meta.ReadChunk reads one chunk by range-reading the gzip layer
// from the chunk's context start to the chunk's end, inflating from there
// and verifying the chunk's sha256.
package targzref
