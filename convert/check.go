package convert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/storage/backend"
)

// ErrInvalid reports an image that fails a check rule.
var ErrInvalid = errors.New("invalid nydus image")

// Report describes a checked image.
type Report struct {
	Ref      string
	Manifest digest.Digest
	Layout   Layout
	// Blobs is the number of data blobs; Paths the paths in the bootstrap.
	Blobs int
	Paths int
	// DataBytes is how many bytes of file data were read and verified.
	DataBytes int64
	// Compared reports that the tree was compared with a source image.
	Compared bool
	Elapsed  time.Duration
}

// checker holds one check's state.
type checker struct {
	c        *config
	log      *slog.Logger
	targetEP *endpoint
	target   *image
	sourceEP *endpoint
	source   *image

	layout  Layout
	blobs   []ocispec.Descriptor
	boot    ocispec.Descriptor
	diffIDs []digest.Digest
	be      backend.Backend
	img     *rafs.Image
	rep     *Report
}

// Check verifies the Nydus image targetRef: the manifest rules, that every
// data blob exists with its recorded size, that the bootstrap opens and
// its blob table matches the manifest, and that every file reads back with
// verified chunks. With sourceRef non-empty the file tree (content, mode,
// owners, symlinks, devices, xattrs, hardlinks) must also equal the source
// image's flattened layers. Failed rules wrap ErrInvalid.
//
// Check honours WithSource, WithTarget, WithPlatform, WithParallelism,
// WithWorkDir, WithLogger and WithProgress.
func Check(ctx context.Context, targetRef, sourceRef string, opts ...Option) (*Report, error) {
	c, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	k := &checker{c: c, log: c.log}
	if k.targetEP, err = c.target.resolve(ctx, targetRef, "target"); err != nil {
		return nil, err
	}
	if k.targetEP, err = resolveNydus(k.targetEP, c.platform); err != nil {
		return nil, err
	}
	if k.target, err = fetchImage(k.targetEP, c.platform, "target"); err != nil {
		return nil, err
	}
	if sourceRef != "" {
		if k.sourceEP, err = c.source.resolve(ctx, sourceRef, "source"); err != nil {
			return nil, err
		}
		if k.source, err = fetchImage(k.sourceEP, c.platform, "source"); err != nil {
			return nil, err
		}
	}
	k.rep = &Report{Ref: k.targetEP.ref.String(), Manifest: k.target.desc.Digest, Compared: k.source != nil}
	c.log.Info("checking", "target", k.rep.Ref, "manifest", k.rep.Manifest, "source", sourceRef)

	if err := k.checkManifest(); err != nil {
		return k.rep, fmt.Errorf("%w: manifest: %w", ErrInvalid, err)
	}
	k.rep.Layout, k.rep.Blobs = k.layout, len(k.blobs)
	c.log.Info("manifest rule passed", "layout", k.layout, "blobs", len(k.blobs))

	if k.be, err = k.targetEP.blobBackend(ctx); err != nil {
		return k.rep, err
	}
	defer k.be.Close()
	if err := k.checkBlobs(ctx); err != nil {
		return k.rep, fmt.Errorf("%w: blobs: %w", ErrInvalid, err)
	}
	c.log.Info("blob rule passed", "blobs", len(k.blobs))

	if err := k.checkBootstrap(ctx); err != nil {
		return k.rep, fmt.Errorf("%w: bootstrap: %w", ErrInvalid, err)
	}
	c.log.Info("bootstrap rule passed", "inodes", k.img.Inodes(), "blob_table", len(k.img.Blobs()))

	if err := k.checkFilesystem(ctx); err != nil {
		return k.rep, fmt.Errorf("%w: filesystem: %w", ErrInvalid, err)
	}
	k.rep.Elapsed = time.Since(start)
	c.log.Info("check passed", "target", k.rep.Ref, "paths", k.rep.Paths, "data_bytes", k.rep.DataBytes,
		"compared", k.rep.Compared, "elapsed", k.rep.Elapsed.Round(time.Millisecond))
	return k.rep, nil
}
