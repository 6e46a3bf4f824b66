// Package storage is the read chain between a RAFS image and a blob
// backend: it turns requests for chunks of a data blob into verified,
// uncompressed bytes.
//
// A Blob serves one data blob. A read first looks in the chunk cache
// (package storage/cache); missing chunks are fetched from the backend as
// compressed byte ranges, neighbouring chunks of one request merged into
// one range and small reads extended to the following chunks up to the
// amplify size (amplify_io / rafs.batch_size), then decompressed, verified
// against the digest and CRC-32C recorded in the bootstrap, stored in the
// cache and returned. Data from the backend is always verified; data from
// the cache is re-verified when validation is on, and a chunk that fails
// is dropped from the cache and fetched again. Corrupt bytes are never
// returned and never cached.
//
// Concurrent readers of one chunk share a single fetch; fetches of
// different chunks run in parallel up to a bound, and user reads take
// precedence over background prefetch (package storage/prefetch) at that
// bound. Every wait honours the caller's context.
//
// Source adapts a set of Blobs, created lazily from a backend, to the
// rafs.ChunkSource interface the RAFS reader consumes.
package storage
