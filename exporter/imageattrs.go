package exporter

import (
	"fmt"
	"strings"
)

// Attribute names of BuildKit's image exporter that select nydus: upstream
// BuildKit builds nydus images with
// --output type=image,name=…,push=true,compression=nydus,force-compression=true.
const (
	AttrCompression      = "compression"
	AttrForceCompression = "force-compression"
	// CompressionNydus is the compression type that selects this exporter.
	CompressionNydus = "nydus"
)

// imageAttrsKept are image exporter attributes with the same meaning here.
var imageAttrsKept = map[string]string{
	AttrName:               AttrName,
	AttrPush:               AttrPush,
	AttrInsecure:           AttrInsecure,
	"insecure":             AttrInsecure,
	AttrOCIMediaTypes:      AttrOCIMediaTypes,
	AttrCompressor:         AttrCompressor,
	AttrChunkSize:          AttrChunkSize,
	AttrFSVersion:          AttrFSVersion,
	AttrDockerRunnable:     AttrDockerRunnable,
	AttrPrefetch:           AttrPrefetch,
	AttrCompression:        "",
	AttrForceCompression:   "", // every layer is converted anyway
	"compression-level":    "", // chunks are compressed with compressor=
	"store":                "", // images are pushed, never unpacked into a local store
	"unpack":               "",
	"dangling-name-prefix": "",
	"name-canonical":       "",
	"buildinfo":            "",
	"buildinfo-attrs":      "",
}

// ImageAttrs reports whether the attributes of an --output type=image ask
// for nydus compression and, if so, returns them as attributes of
// --output type=nydus, so that both spellings build the same image. An
// image attribute that has no meaning for a nydus image is an error
// naming it, rather than silently ignored.
func ImageAttrs(attrs map[string]string) (map[string]string, bool, error) {
	if !strings.EqualFold(attrs[AttrCompression], CompressionNydus) {
		return nil, false, nil
	}
	out := map[string]string{}
	for k, v := range attrs {
		to, ok := imageAttrsKept[k]
		switch {
		case !ok && strings.HasPrefix(k, "annotation"):
			return nil, true, fmt.Errorf("nydus exporter: %s is not supported with compression=nydus (annotations come from the conversion)", k)
		case !ok:
			return nil, true, fmt.Errorf("nydus exporter: image exporter attribute %s is not supported with compression=nydus", k)
		case to != "":
			out[to] = v
		}
	}
	if _, err := ParseAttrs(out); err != nil {
		return nil, true, err
	}
	return out, true, nil
}
