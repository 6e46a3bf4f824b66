// Package zran gives random access to an unmodified gzip stream (an OCI
// layer as pushed to a registry), the technique upstream Nydus calls zran
// and uses for OCI-ref (targz-ref) images: the layer stays as it is, and
// the image's blob.meta carries, for each chunk, an inflate context to
// resume decompression from.
//
// Building: a Generator is the io.Reader of the uncompressed stream; a tar
// parser reads the layer through it and brackets each chunk's bytes with
// BeginChunk and EndChunk. The generator inflates the stream once (it
// also hashes it, for the layer digest), records the deflate block
// boundaries it passes, and assigns each chunk to an inflate Context by
// upstream's rules (Limits: a new gzip member, enough compressed or
// uncompressed bytes since the context's start, or a large gap).
// Multi-member gzip (e.g. bgzip) is supported. Each context is verified
// when it closes, by re-inflating its first chunk from the bytes kept
// since its start; one opened at a misreported block boundary is moved to
// the true start or merged into the previous context. Finish returns the
// contexts, and EncodeContexts lays them out as upstream's
// ZranInflateContext table followed by the dictionaries.
//
// Reading: DecodeContexts parses that table, and Context.Inflate (or
// InflateAt) inflates a chunk's bytes from the compressed range starting
// at the context, given at least InLen bytes (plus ReadSlack): rafs/targzref
// reads chunks so, and the storage layer's zran blobs read through it.
//
// A context carries the fields of upstream's zran inflate context: where
// the block starts in the compressed stream (the offset just after a
// partially consumed byte, the number of its bits still to be consumed and
// the byte itself), where it lands in the output, and the up-to-32 KiB
// window preceding it.
package zran
