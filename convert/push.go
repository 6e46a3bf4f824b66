package convert

import (
	"bytes"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
)

// blob is a v1.Layer of known digest and size whose bytes come from open;
// the registry client skips it when the repository already has it.
type blob struct {
	digest    digest.Digest
	size      int64
	mediaType string
	open      func() (io.ReadCloser, error)
}

func (b *blob) hash() v1.Hash {
	return v1.Hash{Algorithm: b.digest.Algorithm().String(), Hex: b.digest.Encoded()}
}

func (b *blob) Digest() (v1.Hash, error)             { return b.hash(), nil }
func (b *blob) DiffID() (v1.Hash, error)             { return b.hash(), nil }
func (b *blob) Compressed() (io.ReadCloser, error)   { return b.open() }
func (b *blob) Uncompressed() (io.ReadCloser, error) { return b.open() }
func (b *blob) Size() (int64, error)                 { return b.size, nil }
func (b *blob) MediaType() (types.MediaType, error)  { return types.MediaType(b.mediaType), nil }
func (b *blob) String() string                       { return b.digest.String() }
func fileBlob(path string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return os.Open(path) }
}

func bytesBlob(data []byte, mediaType string) *blob {
	return &blob{digest: digest.FromBytes(data), size: int64(len(data)), mediaType: mediaType,
		open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}
}

// pushBlob uploads b to the endpoint's repository.
func (e *endpoint) pushBlob(b *blob) error {
	if err := remote.WriteLayer(e.repo(), b, e.opts...); err != nil {
		return fmt.Errorf("push blob %s to %s: %w", b.digest, e.repo(), err)
	}
	return nil
}

// rawManifest is a manifest to PUT as is.
type rawManifest struct {
	data      []byte
	mediaType string
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.data, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.MediaType(m.mediaType), nil }

// putManifest uploads a manifest under ref (a tag or its digest).
func (e *endpoint) putManifest(ref string, m rawManifest) error {
	r := e.ref
	if ref != "" {
		var err error
		if r, err = parseRefIn(e, ref); err != nil {
			return err
		}
	}
	if err := remote.Put(r, m, e.opts...); err != nil {
		return fmt.Errorf("push manifest to %s: %w", r, err)
	}
	return nil
}
