package convert

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/targzref"
)

// buildRefLayer indexes gzip source layer l with zran (upstream's
// targz-ref) into a small RAFS blob staged in the work directory: chunk
// infos with inflate contexts, dictionaries, ToC and inline bootstrap, no
// file data. The bootstrap's blob entry is the source layer itself (blob
// id = its digest) and records the RAFS blob as its meta blob.
func (c *config) buildRefLayer(ctx context.Context, index int, l v1.Layer, add func(int64)) (_ *builtLayer, err error) {
	start := time.Now()
	src, counted, rc, err := openSourceLayer(index, l, add)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	f, done, err := c.stageFile(index, "nydus-ref-blob-*")
	if err != nil {
		return nil, err
	}
	defer done(&err)
	bw := bufio.NewWriterSize(f, 1<<20)
	res, err := targzref.Build(ctx, counted, bw, targzref.WithChunkSize(c.chunkSize), targzref.WithTOC(true), targzref.WithInlineBootstrap(true),
		targzref.WithSourceOptions(source.WithLogger(c.log.With("layer", index)), source.WithPrefetch(c.prefetch)))
	if errors.Is(err, targzref.ErrNotGzip) {
		return nil, fmt.Errorf("layer %d (%s): --oci-ref needs gzip layers: %w", index, src, err)
	}
	if err != nil {
		return nil, fmt.Errorf("layer %d (%s): %w", index, src, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("layer %d: stage blob: %w", index, err)
	}
	// The zran index is only valid for the exact bytes the manifest names.
	if got := res.Entry.ID(); got != src.Encoded() {
		return nil, fmt.Errorf("layer %d: the registry served bytes whose sha256 is %s, but the manifest names %s", index, got, src)
	}
	if len(res.Tree.Blobs) != 1 {
		return nil, fmt.Errorf("layer %d: targz-ref tree has %d blobs, want 1", index, len(res.Tree.Blobs))
	}
	meta, err := hex.DecodeString(res.MetaID)
	if err != nil || len(meta) != 32 {
		return nil, fmt.Errorf("layer %d: RAFS blob id %q", index, res.MetaID)
	}
	entry := res.Tree.Blobs[0]
	copy(entry.MetaDigest[:], meta)
	entry.MetaSize = res.MetaSize
	b := &builtLayer{index: index, source: src, path: f.Name(), digest: blobDigest(res.MetaID),
		size: int64(res.MetaSize), tree: res.Tree, chunks: len(res.Chunks), tableID: src.Encoded(), ref: true}
	el := time.Since(start)
	c.log.Info("layer indexed (oci-ref)", "layer", index, "source", src, "source_bytes", counted.n,
		"rafs_blob", b.digest, "rafs_blob_bytes", b.size, "chunks", b.chunks, "contexts", res.Contexts,
		"elapsed", el.Round(time.Millisecond), "MiB/s", mibPerSec(counted.n, el))
	return b, nil
}

// ensureLayer makes source layer l (digest d) available in the target
// repository, where nydusd fetches oci-ref data by digest: nothing when it
// is there already, a cross-repository mount within one registry, or, from
// another registry, an upload of the layer as it is (logged: the one case
// that copies data).
func (c *config) ensureLayer(ctx context.Context, src, dst *endpoint, l v1.Layer, d digest.Digest) error {
	dst = dst.withContext(ctx)
	if ok, err := blobExists(dst, d); err == nil && ok {
		return nil
	}
	if src.repo().RegistryStr() != dst.repo().RegistryStr() {
		c.log.Warn("oci-ref: the source layer lives in another registry; uploading it to the target repository", "layer", d)
	}
	ml := &remote.MountableLayer{Layer: l, Reference: src.repo().Digest(d.String())}
	if err := remote.WriteLayer(dst.repo(), ml, dst.opts...); err != nil {
		return fmt.Errorf("oci-ref: make source layer %s available in %s: %w", d, dst.repo(), err)
	}
	return nil
}

// blobExists asks the registry (HEAD) whether repository dst holds blob d.
func blobExists(dst *endpoint, d digest.Digest) (bool, error) {
	l, err := remote.Layer(dst.repo().Digest(d.String()), dst.opts...)
	if err != nil {
		return false, err
	}
	if _, err := l.Size(); err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == 404 {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
