package convert

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
)

// builtLayer is one source layer converted to a RAFS blob staged on disk.
type builtLayer struct {
	index  int
	source digest.Digest // the source layer's digest
	path   string        // staged blob file
	digest digest.Digest // sha256 of the blob = RAFS blob id
	size   int64
	tree   *tree.Tree // the layer's tree, input of the merge
	chunks int
	// tableID is the id the bootstrap's blob table gives this layer's data:
	// the blob's own for RAFS blobs, the source layer's for oci-ref.
	tableID string
	ref     bool // an oci-ref (zran) layer: the blob is metadata only
}

// remove deletes the staged blob file.
func (b *builtLayer) remove() { os.Remove(b.path) }

// buildLayer streams source layer l (plain, gzip or zstd tar) through the
// tar parser into a RAFS blob with an inline bootstrap and ToC, staged in
// the work directory. Nothing of the layer is unpacked to disk.
// add, when non-nil, counts the bytes read for progress.
func (c *config) buildLayer(ctx context.Context, index int, l v1.Layer, add func(int64)) (_ *builtLayer, err error) {
	start := time.Now()
	src, counted, rc, err := openSourceLayer(index, l, add)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	f, done, err := c.stageFile(index, "nydus-blob-*")
	if err != nil {
		return nil, err
	}
	defer done(&err)
	sum := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, sum), 1<<20)

	opts := []builder.Option{builder.WithCompressor(c.compressor), builder.WithChunkSize(c.chunkSize),
		builder.WithInlineBootstrap(true), builder.WithTOC(true)}
	if c.workers > 0 {
		opts = append(opts, builder.WithWorkers(c.workers))
	}
	fill := func(ctx context.Context, w builder.FileWriter) (*tree.Tree, error) {
		return source.FromTar(ctx, counted, w, source.WithLogger(c.log.With("layer", index)), source.WithPrefetch(c.prefetch))
	}
	res, err := builder.Build(ctx, fill, bw, opts...)
	if err != nil {
		return nil, fmt.Errorf("layer %d (%s): %w", index, src, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("layer %d: stage blob: %w", index, err)
	}
	// Read what the tar parser left (end-of-archive padding) so the
	// registry client verifies the layer digest.
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return nil, fmt.Errorf("layer %d (%s): %w", index, src, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != res.Blob.ID() {
		return nil, fmt.Errorf("layer %d: blob id %s differs from the staged bytes' sha256 %s", index, res.Blob.ID(), got)
	}
	for _, b := range res.Tree.Blobs {
		if b != nil && b.ID() == builder.PlaceholderBlobID {
			return nil, fmt.Errorf("layer %d: blob table keeps a placeholder id", index)
		}
	}
	b := &builtLayer{index: index, source: src, path: f.Name(), digest: blobDigest(res.Blob.ID()),
		size: int64(res.Blob.Size), tree: res.Tree, chunks: len(res.Blob.Chunks), tableID: res.Blob.ID()}
	el := time.Since(start)
	c.log.Info("layer converted", "layer", index, "source", src, "source_bytes", counted.n,
		"blob", b.digest, "blob_bytes", b.size, "chunks", b.chunks, "elapsed", el.Round(time.Millisecond),
		"MiB/s", mibPerSec(counted.n, el))
	return b, nil
}

type countingReader struct {
	r   io.Reader
	n   int64
	add func(int64) // progress, when non-nil
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.add != nil && n > 0 {
		c.add(int64(n))
	}
	return n, err
}

func mibPerSec(n int64, d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", float64(n)/(1<<20)/d.Seconds())
}
