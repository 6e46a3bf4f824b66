// Package cache keeps the chunks of data blobs on local disk in the layout
// nydusd and nydus-snapshotter use, so a cache directory can be shared with
// (or inherited from) an upstream nydusd:
//
//	<work_dir>/<blob_id>.blob.data            uncompressed chunks at their uncompressed offsets (sparse)
//	<work_dir>/<blob_id>.blob.raw             compressed chunks at their compressed offsets (compressed mode)
//	<work_dir>/<blob_id>.blob.data.chunk_map  4096-byte header + one readiness bit per chunk
//
// With WithTable (nydusd always sets it) the chunk map's header records
// the digest of the chunk table its bits were set for, in bytes upstream
// keeps zero: an image that names the same blob id with another chunk
// table (a lie, or a corrupt image) caches apart in <blob_id>.<table>.*
// files and never sees, nor poisons, the first table's chunks. Bits of a
// map that records no table are dropped when a table binds it.
//
// The chunk map is memory-mapped shared and its bits are flipped with
// atomic compare-and-swap, so several processes may use one directory at
// the same time.
//
// Durability rule: a chunk's bit is set only after its data has reached
// stable storage (fdatasync of the data file). Writers do not sync per
// chunk: Put writes the data with pwrite and queues the chunk; a flusher
// syncs the data file once per batch (SyncInterval, or when SyncBytes are
// pending) and then sets the bits of every chunk in the batch. A kill -9 or
// power cut can therefore lose recently cached chunks (they are fetched
// again) but can never leave a set bit over data that is not on disk.
// Chunks queued but not yet synced are served from the data file by this
// process (the bytes are in the page cache and were verified before Put).
// BenchmarkPutSync measures the choice: on the development VM's disk a
// sync per 64 KiB chunk costs about 500 µs per chunk, batching about 80 µs
// including the final sync (6-7x). WithSync(0, 0) selects sync-per-chunk.
//
// The package stores bytes; it does not verify them. Callers verify data
// from the network before Put and, when validation is on, re-verify data
// read back with Get and Invalidate chunks that fail.
package cache
