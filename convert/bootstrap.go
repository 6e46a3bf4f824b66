package convert

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"

	dconfig "github.com/gonydus/nydus/daemon/config"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/compress"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/merge"
)

// mergeLayers overlays the layer trees, lowest first, with OCI whiteouts,
// the way nydus-image merge does, and lays out the image bootstrap. The
// trees are consumed. Whiteouts in the lowest layer delete nothing and are
// dropped, as docker and containerd do when they unpack a first layer.
// The merged prefetch table lists prefetch's paths that exist.
func mergeLayers(layers []*builtLayer, prefetch []string) ([]byte, *builder.BootstrapInfo, error) {
	m, err := merge.NewLayers(merge.WithWhiteoutSpec(merge.WhiteoutOCI), merge.WithBeforeApply(keepLowerDirAttrs))
	if err != nil {
		return nil, nil, err
	}
	for i, l := range layers {
		// Every layer's chunks live in its own blob.
		if len(l.tree.Blobs) != 1 {
			return nil, nil, fmt.Errorf("layer %d: tree has %d blobs, want 1", i, len(l.tree.Blobs))
		}
		if err := m.Add(l.tree); err != nil {
			return nil, nil, fmt.Errorf("layer %d: %w", i, err)
		}
		l.tree = nil
	}
	if len(layers) == 0 {
		return nil, nil, fmt.Errorf("image has no layers")
	}
	merged, err := m.Tree()
	if err != nil {
		return nil, nil, err
	}
	merged.Prefetch = prefetch
	boot, info, err := builder.EncodeBootstrap(merged)
	if err != nil {
		return nil, nil, fmt.Errorf("merged bootstrap: %w", err)
	}
	return boot, info, nil
}

// bootstrapLayer is the gzip tar holding image/image.boot.
type bootstrapLayer struct {
	data   []byte        // gzip tar
	digest digest.Digest // of data
	diffID digest.Digest // of the uncompressed tar
}

// packBootstrap wraps the bootstrap as nydus-snapshotter does: a
// directory "image" (0755) and the file image/image.boot (0444), owned by
// root, times zero, so equal bootstraps give equal layers. A non-nil
// backend file (LayoutDockerRunnable) is added as image/backend.json.
func packBootstrap(boot []byte, backend *BackendFile) (*bootstrapLayer, error) {
	files := []struct {
		name string
		data []byte
	}{{BootstrapPath, boot}}
	if backend != nil {
		b, err := json.MarshalIndent(backend, "", "  ")
		if err != nil {
			return nil, err
		}
		files = append(files, struct {
			name string
			data []byte
		}{BackendFilePath, append(b, '\n')})
	}
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	diff := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(gw, diff))
	if err := tw.WriteHeader(&tar.Header{Name: "image", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatUSTAR}); err != nil {
		return nil, fmt.Errorf("bootstrap layer: %w", err)
	}
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o444, Size: int64(len(f.data)), Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("bootstrap layer: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("bootstrap layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("bootstrap layer: %w", err)
	}
	if err := gw.Close(); err != nil {
		return nil, fmt.Errorf("bootstrap layer: %w", err)
	}
	return &bootstrapLayer{data: gz.Bytes(), digest: digest.FromBytes(gz.Bytes()),
		diffID: digest.NewDigestFromBytes(digest.SHA256, diff.Sum(nil))}, nil
}

// bootstrapFiles is what a bootstrap layer holds.
type bootstrapFiles struct {
	boot    []byte
	backend *BackendFile  // image/backend.json, if present
	diffID  digest.Digest // sha256 of the uncompressed tar
}

// readBootstrapLayer extracts image/image.boot (or the legacy image.boot)
// and image/backend.json from a bootstrap layer (gzip or plain tar).
func readBootstrapLayer(r io.Reader) (*bootstrapFiles, error) {
	tr, _, err := compress.NewStreamReader(r)
	if err != nil {
		return nil, fmt.Errorf("bootstrap layer: %w", err)
	}
	defer tr.Close()
	diff := sha256.New()
	t := tar.NewReader(io.TeeReader(tr, diff))
	var out bootstrapFiles
	for {
		h, err := t.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bootstrap layer: %w", err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != tar.TypeReg || (name != BootstrapPath && name != "image.boot" && name != BackendFilePath) {
			continue
		}
		limit := int64(layout.MaxMetadataSize)
		if name == BackendFilePath {
			limit = dconfig.MaxImageBackendSize
		}
		if h.Size > limit {
			return nil, fmt.Errorf("bootstrap layer: %s is %d bytes, over the %d-byte limit", h.Name, h.Size, limit)
		}
		data, err := io.ReadAll(t)
		if err != nil {
			return nil, fmt.Errorf("bootstrap layer: %w", err)
		}
		if name == BackendFilePath {
			if out.backend, err = parseBackendFile(data); err != nil {
				return nil, fmt.Errorf("bootstrap layer: %w", err)
			}
			continue
		}
		out.boot = data
	}
	// The diff id covers the whole tar, padding after the end marker too.
	if _, err := io.Copy(diff, tr); err != nil {
		return nil, fmt.Errorf("bootstrap layer: %w", err)
	}
	if out.boot == nil {
		return nil, fmt.Errorf("bootstrap layer has no %s", BootstrapPath)
	}
	out.diffID = digest.NewDigestFromBytes(digest.SHA256, diff.Sum(nil))
	return &out, nil
}
