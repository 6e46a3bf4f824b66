// Package convert turns ordinary OCI or Docker images in a registry into
// Nydus (RAFS v6) images in a registry, and checks pushed Nydus images. It
// is the library behind cmd/nydusify, whose convert and check subcommands
// follow upstream nydusify's flags.
//
// Convert pulls the source manifest and config, streams every layer
// (gzip, zstd or plain tar) through rafs/source and rafs/builder in
// parallel, without unpacking it to disk, into a RAFS data blob with an
// inline bootstrap and ToC (what nydus-image create --type tar-rafs
// --blob-inline-meta --features blob-toc writes), pushes the blobs, merges
// the per-layer trees with OCI whiteouts into one bootstrap, and pushes it
// as a gzip tar layer holding image/image.boot.
//
// Two manifest layouts are written:
//
//   - LayoutNydus, what upstream nydusify and nydus-snapshotter write: one
//     layer of media type application/vnd.oci.image.layer.nydus.blob.v1
//     per source layer (annotation containerd.io/snapshot/nydus-blob=true),
//     then the bootstrap layer last (annotations
//     containerd.io/snapshot/nydus-bootstrap=true and
//     containerd.io/snapshot/nydus-fs-version=6). The config keeps the
//     source's, with rootfs.diff_ids rewritten (a data layer's diff id is
//     its digest, the bootstrap's is the sha256 of its tar) and a
//     "Nydus Bootstrap Layer" history entry appended.
//
//   - LayoutDockerRunnable, for the Docker graphdriver: the bootstrap layer
//     is the manifest's only layer, so docker pull downloads nothing but
//     metadata. The data blobs are pushed to the same repository as plain
//     blobs; the bootstrap layer lists them (annotation AnnotationBlobs, a
//     JSON array of descriptors) and carries BackendFilePath (a
//     BackendFile: nydusd's backend section locating the blobs, for a
//     graphdriver, which sees layer files but never annotations), and a
//     separate OCI artifact manifest whose subject is the image manifest
//     references them so registry garbage collection keeps them.
//
// Check verifies a pushed image: the manifest rules upstream nydusify
// check applies, that every data blob exists with the recorded size, that
// the bootstrap opens with the rafs reader and its blob table matches the
// manifest, and, given the source image, that every file read through the
// rafs reader (chunks fetched lazily from the registry) equals the source
// image's flattened layers.
package convert
