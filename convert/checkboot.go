package convert

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
)

// checkBlobs asks the registry for every data blob's size.
func (k *checker) checkBlobs(ctx context.Context) error {
	var errs []error
	for _, d := range k.blobs {
		b, err := k.be.Open(ctx, d.Digest.Encoded())
		if err != nil {
			errs = append(errs, fmt.Errorf("blob %s: %w", d.Digest, err))
			continue
		}
		size, err := b.Size(ctx)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("blob %s is not in %s: %w", d.Digest, k.targetEP.repo(), err))
		case size != d.Size:
			errs = append(errs, fmt.Errorf("blob %s has %d bytes in the registry, the manifest says %d", d.Digest, size, d.Size))
		}
	}
	return errors.Join(errs...)
}

// checkBootstrap downloads the bootstrap layer (digest verified), checks
// its diff id, opens the bootstrap with the rafs reader and matches its
// blob table with the manifest.
func (k *checker) checkBootstrap(ctx context.Context) error {
	ref, err := parseRefIn(k.targetEP, k.boot.Digest.String())
	if err != nil {
		return err
	}
	l, err := remote.Layer(ref.Context().Digest(k.boot.Digest.String()), k.targetEP.opts...)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", k.boot.Digest, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("fetch %s: %w", k.boot.Digest, err)
	}
	defer rc.Close()
	files, err := readBootstrapLayer(rc)
	if err != nil {
		return err
	}
	if want := k.diffIDs[len(k.diffIDs)-1]; files.diffID != want {
		return fmt.Errorf("bootstrap layer diff id %s, config says %s", files.diffID, want)
	}
	if k.layout == LayoutDockerRunnable {
		if err := k.checkBackendFile(files.backend); err != nil {
			return err
		}
	}
	boot := files.boot
	if k.img, err = rafs.Open(bytes.NewReader(boot), int64(len(boot))); err != nil {
		return fmt.Errorf("open %s: %w", BootstrapPath, err)
	}
	listed := map[string]int64{}
	for _, b := range k.blobs {
		listed[b.Digest.Encoded()] = b.Size
	}
	var errs []error
	table := k.img.Blobs()
	inTable := map[string]bool{}
	for i, e := range table {
		id := e.ID()
		if e.Features&layout.BlobZran != 0 {
			// oci-ref: the data is the source gzip layer (id), the manifest
			// lists its RAFS blob (the meta digest).
			meta := hex.EncodeToString(e.MetaDigest[:])
			inTable[meta] = true
			if size, ok := listed[meta]; !ok {
				errs = append(errs, fmt.Errorf("blob table entry %d (zran layer %s): its RAFS blob %s is not listed in the manifest", i, id, meta))
			} else if uint64(size) != e.MetaSize {
				errs = append(errs, fmt.Errorf("zran layer %s: blob table says its RAFS blob has %d bytes, the manifest %d", id, e.MetaSize, size))
			}
			errs = append(errs, k.checkRefLayer(ctx, id, int64(e.CompressedSize)))
			continue
		}
		inTable[id] = true
		size, ok := listed[id]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("blob table entry %d (%s) is not listed in the manifest", i, id))
		case int64(e.CompressedSize) > size:
			errs = append(errs, fmt.Errorf("blob %s: blob table says %d compressed bytes, the blob has %d", id, e.CompressedSize, size))
		}
	}
	if k.layout == LayoutDockerRunnable {
		for _, b := range k.blobs {
			if !inTable[b.Digest.Encoded()] {
				errs = append(errs, fmt.Errorf("%s lists blob %s, which the bootstrap does not reference", AnnotationBlobs, b.Digest))
			}
		}
	}
	return errors.Join(errs...)
}

// checkBackendFile checks that a docker-runnable bootstrap layer says
// where its blobs are; a location other than the checked repository (an
// image copied since) is only a warning.
func (k *checker) checkBackendFile(f *BackendFile) error {
	if f == nil {
		return fmt.Errorf("docker-runnable bootstrap layer has no %s", BackendFilePath)
	}
	repo := k.targetEP.repo()
	if f.Config.Host != repo.RegistryStr() || f.Config.Repo != repo.RepositoryStr() {
		k.log.Warn("data blobs were pushed elsewhere: consumers reading "+BackendFilePath+" fetch them there unless configured otherwise",
			"host", f.Config.Host, "repo", f.Config.Repo, "checked", repo)
	}
	return nil
}

// checkRefLayer checks that the gzip layer an oci-ref blob indexes is in
// the target repository with the size the bootstrap records.
func (k *checker) checkRefLayer(ctx context.Context, id string, want int64) error {
	b, err := k.be.Open(ctx, id)
	if err != nil {
		return fmt.Errorf("zran layer sha256:%s: %w", id, err)
	}
	size, err := b.Size(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("zran layer sha256:%s is not in %s: %w", id, k.targetEP.repo(), err)
	case size != want:
		return fmt.Errorf("zran layer sha256:%s has %d bytes in the registry, the bootstrap says %d", id, size, want)
	}
	return nil
}
