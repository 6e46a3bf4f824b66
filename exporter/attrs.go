package exporter

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gonydus/nydus/convert"
	"github.com/gonydus/nydus/rafs/layout"
)

// Type is the exporter type buildx and buildctl name: --output type=nydus.
const Type = "nydus"

// Attribute names of --output type=nydus.
const (
	AttrName           = "name"
	AttrPush           = "push"
	AttrInsecure       = "registry.insecure"
	AttrCompressor     = "compressor"
	AttrChunkSize      = "chunk-size"
	AttrFSVersion      = "fs-version"
	AttrDockerRunnable = "docker-runnable"
	AttrPrefetch       = "prefetch"
	AttrOCIMediaTypes  = "oci-mediatypes"
)

// Options are the parsed attributes of one export.
type Options struct {
	// Names are the references to push to.
	Names []string
	// Push pushes the image; without it the layers are converted (and
	// cached) only.
	Push bool
	// Insecure allows plain HTTP and skips TLS verification.
	Insecure bool
	// Compressor is the chunk compressor: zstd (default), lz4_block, none.
	Compressor layout.Compressor
	// ChunkSize is the chunk size, a power of two from 4 KiB to 16 MiB.
	ChunkSize uint32
	// Layout is the manifest layout (docker-runnable=true selects
	// convert.LayoutDockerRunnable).
	Layout convert.Layout
	// Prefetch are the paths nydusd prefetches (default "/").
	Prefetch []string
	// OCI writes OCI media types (default); oci-mediatypes=false writes
	// Docker ones.
	OCI bool
}

// ParseAttrs parses the exporter attributes; an unknown attribute, a bad
// value or push without a name is an error.
func ParseAttrs(attrs map[string]string) (*Options, error) {
	o := &Options{Compressor: layout.CompressZstd, ChunkSize: layout.DefaultChunkSize, Prefetch: []string{"/"}, OCI: true}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := attrs[k]
		var err error
		switch k {
		case AttrName:
			for n := range strings.SplitSeq(v, ",") {
				if n = strings.TrimSpace(n); n != "" {
					o.Names = append(o.Names, n)
				}
			}
		case AttrPush:
			o.Push, err = parseBool(v)
		case AttrInsecure:
			o.Insecure, err = parseBool(v)
		case AttrOCIMediaTypes:
			o.OCI, err = parseBool(v)
		case AttrDockerRunnable:
			var on bool
			if on, err = parseBool(v); on {
				o.Layout = convert.LayoutDockerRunnable
			}
		case AttrCompressor:
			err = o.parseCompressor(v)
		case AttrChunkSize:
			err = o.parseChunkSize(v)
		case AttrFSVersion:
			if v != convert.FSVersion {
				err = fmt.Errorf("only RAFS v%s is written", convert.FSVersion)
			}
		case AttrPrefetch:
			o.Prefetch = nil
			for p := range strings.SplitSeq(v, ":") {
				if p == "" {
					continue
				}
				if !strings.HasPrefix(p, "/") {
					return nil, fmt.Errorf("nydus exporter: %s: path %q is not absolute", k, p)
				}
				o.Prefetch = append(o.Prefetch, p)
			}
		default:
			return nil, fmt.Errorf("nydus exporter: unknown attribute %q (known: %s)", k, strings.Join(knownAttrs, ", "))
		}
		if err != nil {
			return nil, fmt.Errorf("nydus exporter: %s=%q: %w", k, v, err)
		}
	}
	if o.Push && len(o.Names) == 0 {
		return nil, errors.New("nydus exporter: push=true needs name=REGISTRY/REPO:TAG")
	}
	return o, nil
}

var knownAttrs = []string{AttrName, AttrPush, AttrInsecure, AttrCompressor, AttrChunkSize, AttrFSVersion,
	AttrDockerRunnable, AttrPrefetch, AttrOCIMediaTypes}

// parseBool reads a boolean; an empty value (a bare "push") means true,
// as in BuildKit's own exporters.
func parseBool(v string) (bool, error) {
	if v == "" {
		return true, nil
	}
	return strconv.ParseBool(v)
}

func (o *Options) parseCompressor(v string) error {
	c, err := layout.ParseCompressor(v)
	if err != nil {
		return err
	}
	switch c {
	case layout.CompressNone, layout.CompressLZ4, layout.CompressZstd:
		o.Compressor = c
		return nil
	}
	return fmt.Errorf("not supported for data blobs (none, lz4_block, zstd)")
}

func (o *Options) parseChunkSize(v string) error {
	n, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return err
	}
	if n < 0x1000 || n > 0x1000000 || n&(n-1) != 0 {
		return fmt.Errorf("not a power of two between 0x1000 and 0x1000000")
	}
	o.ChunkSize = uint32(n)
	return nil
}
