// Package zran gives random access to an unmodified gzip stream (an OCI
// layer as pushed to a registry), the technique Nydus calls zran: the
// stream is inflated once to record checkpoints at deflate block
// boundaries — where in the compressed stream the block starts (to the
// bit), where it lands in the output, and the 32 KiB window preceding it —
// and any byte range is later read by resuming inflation at the nearest
// checkpoint before it. Multi-member gzip (e.g. bgzip) is supported.
//
// A checkpoint carries the fields of upstream Nydus's zran inflate
// context: the compressed offset just after a partially consumed byte,
// the number of its bits still to be consumed and the byte itself.
package zran
