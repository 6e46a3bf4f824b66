package convert

// Media types and annotations of Nydus images in a registry, as upstream
// nydusify and nydus-snapshotter write them.
const (
	// MediaTypeNydusBlob is a RAFS data blob layer (OCI and Docker manifests).
	MediaTypeNydusBlob = "application/vnd.oci.image.layer.nydus.blob.v1"
	// MediaTypeOCILayerGzip and MediaTypeDockerLayerGzip are the bootstrap
	// layer's media types in OCI and Docker manifests.
	MediaTypeOCILayerGzip    = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"

	MediaTypeOCIManifest    = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeOCIConfig      = "application/vnd.oci.image.config.v1+json"
	MediaTypeDockerConfig   = "application/vnd.docker.container.image.v1+json"
	MediaTypeOCIEmpty       = "application/vnd.oci.empty.v1+json"

	// AnnotationNydusBlob marks a data layer.
	AnnotationNydusBlob = "containerd.io/snapshot/nydus-blob"
	// AnnotationNydusRef, on an oci-ref data layer, names the source gzip
	// layer whose data its zran index refers to.
	AnnotationNydusRef = "containerd.io/snapshot/nydus-ref"
	// AnnotationNydusBootstrap marks the bootstrap layer.
	AnnotationNydusBootstrap = "containerd.io/snapshot/nydus-bootstrap"
	// AnnotationFSVersion records the RAFS version on the bootstrap layer.
	AnnotationFSVersion = "containerd.io/snapshot/nydus-fs-version"

	// AnnotationBlobs, on the bootstrap layer of a LayoutDockerRunnable
	// image, lists the data blobs the bootstrap references (stored in the
	// same repository, not listed as layers) as a JSON array of OCI
	// descriptors. It deliberately lies outside containerd.io/snapshot/,
	// whose annotations containerd copies into labels of at most 4 KiB.
	AnnotationBlobs = "io.github.gonydus.nydus.blobs"

	// ArtifactTypeBlobs is the artifact type of the manifest that keeps a
	// LayoutDockerRunnable image's data blobs referenced.
	ArtifactTypeBlobs = "application/vnd.gonydus.nydus.blobs.v1"

	// BootstrapPath is the bootstrap's path inside the bootstrap layer tar.
	BootstrapPath = "image/image.boot"
	// BackendFilePath is where a LayoutDockerRunnable bootstrap layer says
	// where its data blobs are (a BackendFile as JSON): a Docker
	// graphdriver sees the layer's files, never the manifest.
	BackendFilePath = "image/backend.json"

	// FSVersion is the only RAFS version written.
	FSVersion = "6"

	bootstrapHistoryCreatedBy = "Nydus Converter"
	bootstrapHistoryComment   = "Nydus Bootstrap Layer"
)
