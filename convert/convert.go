package convert

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Result describes a pushed Nydus image.
type Result struct {
	// Ref is the target reference; Manifest describes what it now points to.
	Ref      string
	Manifest ocispec.Descriptor
	Layout   Layout
	// Blobs are the data blobs, in manifest (LayoutNydus) or blob-table
	// (LayoutDockerRunnable) order; Bootstrap is the bootstrap layer.
	Blobs     []ocispec.Descriptor
	Bootstrap ocispec.Descriptor
	// SourceBytes is the compressed size of the source layers.
	SourceBytes int64
	Elapsed     time.Duration
}

// ErrAlreadyNydus reports a source that is a Nydus image already.
var ErrAlreadyNydus = errors.New("convert: source is already a nydus image")

// Convert pulls the image sourceRef, converts it to a Nydus image and
// pushes it to targetRef.
func Convert(ctx context.Context, sourceRef, targetRef string, opts ...Option) (*Result, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	srcEP, err := c.source.resolve(ctx, sourceRef, "source")
	if err != nil {
		return nil, err
	}
	dstEP, err := c.target.resolve(ctx, targetRef, "target")
	if err != nil {
		return nil, err
	}
	src, err := fetchImage(srcEP, c.platform, "source")
	if err != nil {
		return nil, err
	}
	if isNydus(&src.manifest) {
		return nil, fmt.Errorf("%w: %s", ErrAlreadyNydus, srcEP.ref)
	}
	layers, err := src.img.Layers()
	if err != nil {
		return nil, fmt.Errorf("source image %s: layers: %w", srcEP.ref, err)
	}
	var srcBytes int64
	for _, l := range src.manifest.Layers {
		srcBytes += l.Size
	}
	c.log.Info("converting", "source", srcEP.ref, "target", dstEP.ref, "layers", len(layers),
		"source_bytes", srcBytes, "layout", c.layout, "compressor", c.compressor, "chunk_size", c.chunkSize)

	// Build every layer (and, for LayoutNydus, push its blob) in parallel.
	built := make([]*builtLayer, len(layers))
	defer func() {
		for _, b := range built {
			if b != nil {
				b.remove()
			}
		}
	}()
	if err := c.buildLayers(ctx, built, srcEP, dstEP, src, layers); err != nil {
		return nil, err
	}

	boot, info, err := mergeLayers(built, c.prefetch)
	if err != nil {
		return nil, err
	}
	c.log.Info("bootstrap merged", "bytes", len(boot), "inodes", info.Inodes, "blobs", len(info.Blobs))
	mt := dockerTypes
	if src.oci() || c.oci {
		mt = ociTypes
	}
	var subject *ocispec.Descriptor
	if c.referrer {
		subject = &src.desc
	}
	res, err := c.publishTo(ctx, dstEP, built, boot, info, mt, manifestSpec{config: src.rawConfig, base: &src.manifest,
		subject: subject, blobsPushed: true})
	if err != nil {
		return nil, err
	}
	res.SourceBytes = srcBytes
	res.Elapsed = time.Since(start)
	c.log.Info("converted", "target", res.Ref, "manifest", res.Manifest.Digest, "layout", c.layout,
		"blobs", len(res.Blobs), "elapsed", res.Elapsed.Round(time.Millisecond))
	return res, nil
}

// buildLayers builds every layer of src into built[i] with c.parallelism
// builds at once, showing progress; for LayoutNydus it pushes each blob to
// dstEP (and removes the local file) as soon as it is built. The caller
// removes what is left in built.
func (c *config) buildLayers(ctx context.Context, built []*builtLayer, srcEP, dstEP *endpoint, src *image, layers []v1.Layer) error {
	prog, endProgress := c.startProgress()
	defer endProgress()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.parallelism)
	for i, l := range layers {
		g.Go(func() error {
			build := c.buildLayer
			if c.ociRef {
				build = c.buildRefLayer
			}
			var d ocispec.Descriptor
			if i < len(src.manifest.Layers) {
				d = src.manifest.Layers[i]
			}
			add, done := prog.Track(unitName("layer", i, len(layers), d.Digest), d.Size)
			b, err := build(gctx, i, l, add)
			if err != nil {
				return err
			}
			if b.ref {
				// The data stays in the source layer, fetched by digest
				// from the target repository.
				if err := c.ensureLayer(gctx, srcEP, dstEP, l, b.source); err != nil {
					return err
				}
			}
			built[i] = b
			if c.layout == LayoutNydus {
				if err := dstEP.withContext(gctx).pushBlob(&blob{digest: b.digest, size: b.size, mediaType: MediaTypeNydusBlob, open: fileBlob(b.path)}); err != nil {
					return err
				}
				b.remove()
			}
			done()
			return nil
		})
	}
	return g.Wait()
}
