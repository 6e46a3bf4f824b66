// Package exporter is BuildKit's "nydus" exporter: it turns a build result
// into a Nydus (RAFS v6) image and pushes it, in the daemon, without an
// external nydus-image binary.
//
//	docker buildx build --output type=nydus,name=REG/APP:TAG,push=true .
//
// Every layer of the result is taken as its uncompressed diff (BuildKit's
// content store) and streamed through rafs/source and rafs/builder into a
// RAFS data blob with an inline bootstrap and ToC, as convert does for
// registry images. Converted layers are cached in a directory keyed by the
// layer's diff id and the conversion options, so a rebuild converts only
// the layers that changed (base-image layers included, once). The
// per-layer trees are merged with OCI whiteouts (rafs/merge) and
// convert.Publish writes and pushes the bootstrap layer, config and
// manifest in the layout nydusify writes (or, with docker-runnable=true,
// the layout for the Docker graphdriver); the manifest is pushed last, so
// a failed export leaves no manifest behind.
//
// Attributes (ParseAttrs): name (comma-separated references), push,
// registry.insecure, compressor, chunk-size, fs-version, docker-runnable,
// prefetch (colon-separated absolute paths), oci-mediatypes. Any other
// attribute is an error.
//
// The package has two halves: Export, Cache and ParseAttrs work on plain
// readers and are BuildKit-free; buildkit.go adapts them to BuildKit's
// exporter interface (New).
package exporter
