// Package prefetch warms the chunk cache in the background: whole blobs in
// blob order (fs_prefetch / prefetch_all, or a prefetch table of just the
// root) and chunk lists resolved from the RAFS prefetch table or
// prefetch_files by the daemon.
//
// Work is cut into batches (merging_size / batch_size of compressed bytes
// for whole blobs; at most 16 MiB or 1024 chunks for chunk lists, as
// upstream) that threads workers fetch through storage.Blob.Prefetch. Each
// batch first waits while user reads are fetching (the storage Gate
// reports them) and for its share of the bandwidth limit; only then does it
// take a fetch slot and claim chunks, so prefetch never holds anything a
// user read waits for while it is throttled. Chunks already cached or being
// fetched by a reader are skipped.
package prefetch
