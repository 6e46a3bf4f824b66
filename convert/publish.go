package convert

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/tree"
)

// This file exports the second half of Convert — merge, bootstrap layer,
// config, manifest, push — for callers that convert layers themselves
// (the BuildKit exporter converts a build's layer diffs). Convert ends in
// the same publishTo.

// ConvertedLayer is one layer already converted to a RAFS data blob: what
// rafs/builder.Build wrote with an inline bootstrap and ToC (as Convert's
// layers are), staged in a file, and the layer's tree.
type ConvertedLayer struct {
	// Digest is the sha256 of the blob (the RAFS blob id); Size its length.
	Digest digest.Digest
	Size   int64
	// Path is the staged blob; Publish reads it and leaves it in place.
	Path string
	// Tree is the layer's tree (its blob table holding this one blob).
	// Publish merges and consumes it.
	Tree *tree.Tree
}

// PublishImage is an image to push as a Nydus image.
type PublishImage struct {
	// Layers are the converted layers, lowest first.
	Layers []ConvertedLayer
	// Config is the image config JSON; Publish rewrites rootfs.diff_ids
	// and appends the bootstrap's history entry, keeping the rest.
	Config []byte
	// Annotations are the manifest's annotations (may be nil).
	Annotations map[string]string
}

// Publish merges img's layer trees into one bootstrap and pushes the image
// to every reference in targets, with the layout, media types (WithOCI:
// OCI, else Docker), prefetch table, registry access (WithTarget) and
// logger that opts select. Per target, blobs, bootstrap layer and config
// are pushed before the manifest, so a failed push leaves no manifest
// behind. It returns one Result per target.
func Publish(ctx context.Context, targets []string, img *PublishImage, opts ...Option) ([]*Result, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, errors.New("convert: publish: no target reference")
	}
	start := time.Now()
	eps := make([]*endpoint, len(targets))
	for i, t := range targets {
		if eps[i], err = c.target.resolve(ctx, t, "target"); err != nil {
			return nil, err
		}
	}
	built := make([]*builtLayer, len(img.Layers))
	for i, l := range img.Layers {
		if l.Tree == nil || l.Path == "" {
			return nil, fmt.Errorf("convert: publish: layer %d has no tree or blob file", i)
		}
		built[i] = &builtLayer{index: i, path: l.Path, digest: l.Digest, size: l.Size, tree: l.Tree, tableID: l.Digest.Encoded()}
	}
	boot, info, err := mergeLayers(built, c.prefetch)
	if err != nil {
		return nil, err
	}
	c.log.Info("bootstrap merged", "bytes", len(boot), "inodes", info.Inodes, "blobs", len(info.Blobs))
	mt := dockerTypes
	if c.oci {
		mt = ociTypes
	}
	var out []*Result
	for _, ep := range eps {
		res, err := c.publishTo(ctx, ep, built, boot, info, mt, manifestSpec{config: img.Config, base: &ocispec.Manifest{Annotations: img.Annotations}})
		if err != nil {
			return out, err
		}
		res.Elapsed = time.Since(start)
		c.log.Info("pushed", "target", res.Ref, "manifest", res.Manifest.Digest, "layout", c.layout, "blobs", len(res.Blobs))
		out = append(out, res)
	}
	return out, nil
}

// manifestSpec is what, besides the layers, makes the pushed image.
type manifestSpec struct {
	config  []byte              // the source image config, rewritten
	base    *ocispec.Manifest   // annotations to keep
	subject *ocispec.Descriptor // referrers subject, or nil
	// blobsPushed: the LayoutNydus data blobs are already in the target
	// (Convert pushes each as its layer finishes).
	blobsPushed bool
}

// publishTo pushes the merged image to one target: data blobs (unless
// pushed already), bootstrap layer, config, then the manifest, so a failed
// push leaves no manifest behind.
func (c *config) publishTo(ctx context.Context, dst *endpoint, built []*builtLayer, boot []byte, info *builder.BootstrapInfo, mt mediaTypes, spec manifestSpec) (*Result, error) {
	res := &Result{Ref: dst.ref.String(), Layout: c.layout}
	var layerDescs []ocispec.Descriptor
	var diffIDs []digest.Digest
	var backend *BackendFile
	switch c.layout {
	case LayoutNydus:
		if !spec.blobsPushed {
			if err := c.pushStaged(ctx, dst, built); err != nil {
				return nil, err
			}
		}
		for _, b := range built {
			d := blobDescriptor(b.digest, b.size)
			if b.ref {
				d.Annotations[AnnotationNydusRef] = b.source.String()
			}
			res.Blobs = append(res.Blobs, d)
			layerDescs = append(layerDescs, d)
			diffIDs = append(diffIDs, b.digest)
		}
	case LayoutDockerRunnable:
		refd, err := referencedBlobs(built, info.Blobs)
		if err != nil {
			return nil, err
		}
		if err := c.pushStaged(ctx, dst, refd); err != nil {
			return nil, err
		}
		for _, b := range refd {
			res.Blobs = append(res.Blobs, blobDescriptor(b.digest, b.size))
		}
		repo := dst.repo()
		backend = &BackendFile{Type: "registry", Config: RegistryBackend{Scheme: dst.blobScheme(ctx),
			Host: repo.RegistryStr(), Repo: repo.RepositoryStr(), SkipVerify: dst.insecure}}
	}
	bl, err := packBootstrap(boot, backend)
	if err != nil {
		return nil, err
	}
	var listed []ocispec.Descriptor
	if c.layout == LayoutDockerRunnable {
		listed = res.Blobs
	}
	if res.Bootstrap, err = bootstrapDescriptor(mt, bl, listed); err != nil {
		return nil, err
	}
	layerDescs = append(layerDescs, res.Bootstrap)
	diffIDs = append(diffIDs, bl.diffID)
	if err := dst.withContext(ctx).pushBlob(bytesBlob(bl.data, mt.bootstrap)); err != nil {
		return nil, err
	}
	cfg, err := rewriteConfig(spec.config, diffIDs, c.layout == LayoutDockerRunnable)
	if err != nil {
		return nil, err
	}
	cfgBlob := bytesBlob(cfg, mt.config)
	if err := dst.withContext(ctx).pushBlob(cfgBlob); err != nil {
		return nil, err
	}
	man, err := buildManifest(mt, spec.base,
		ocispec.Descriptor{MediaType: mt.config, Digest: cfgBlob.digest, Size: cfgBlob.size}, layerDescs, spec.subject)
	if err != nil {
		return nil, err
	}
	if err := dst.withContext(ctx).putManifest("", rawManifest{data: man, mediaType: mt.manifest}); err != nil {
		return nil, err
	}
	res.Manifest = ocispec.Descriptor{MediaType: mt.manifest, Digest: digest.FromBytes(man), Size: int64(len(man))}
	if c.layout == LayoutDockerRunnable {
		c.pushBlobsManifest(dst.withContext(ctx), res)
	}
	return res, nil
}
