package exporter

import (
	"slices"
	"strings"
	"testing"

	"github.com/gonydus/nydus/convert"
	"github.com/gonydus/nydus/rafs/layout"
)

func TestParseAttrs(t *testing.T) {
	o, err := ParseAttrs(map[string]string{
		"name": "reg.example.com/app:1, reg.example.com/app:latest", "push": "true", "registry.insecure": "true",
		"compressor": "lz4_block", "chunk-size": "0x10000", "fs-version": "6", "docker-runnable": "true",
		"prefetch": "/usr/bin:/etc", "oci-mediatypes": "false",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.Names, []string{"reg.example.com/app:1", "reg.example.com/app:latest"}) || !o.Push || !o.Insecure ||
		o.Compressor != layout.CompressLZ4 || o.ChunkSize != 0x10000 || o.Layout != convert.LayoutDockerRunnable ||
		!slices.Equal(o.Prefetch, []string{"/usr/bin", "/etc"}) || o.OCI {
		t.Fatalf("parsed %+v", o)
	}

	o, err = ParseAttrs(map[string]string{"name": "r/app"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Push || o.Insecure || o.Compressor != layout.CompressZstd || o.ChunkSize != layout.DefaultChunkSize ||
		o.Layout != convert.LayoutNydus || !slices.Equal(o.Prefetch, []string{"/"}) || !o.OCI {
		t.Fatalf("defaults %+v", o)
	}
	// A bare key is true, as in BuildKit's exporters.
	if o, err = ParseAttrs(map[string]string{"name": "r/app", "push": ""}); err != nil || !o.Push {
		t.Fatalf("push= : %+v %v", o, err)
	}
}

func TestParseAttrsErrors(t *testing.T) {
	for _, tc := range []struct {
		attrs map[string]string
		want  string
	}{
		{map[string]string{"name": "r/a", "compresion": "zstd"}, `unknown attribute "compresion"`}, //nolint:misspell // the misspelt key is the case under test
		{map[string]string{"dest": "out"}, `unknown attribute "dest"`},
		{map[string]string{"push": "true"}, "push=true needs name="},
		{map[string]string{"push": "maybe"}, `push="maybe"`},
		{map[string]string{"compressor": "gzip"}, "not supported for data blobs"},
		{map[string]string{"compressor": "brotli"}, "unknown compressor"},
		{map[string]string{"chunk-size": "0x3000"}, "not a power of two"},
		{map[string]string{"chunk-size": "0x2000000"}, "not a power of two"},
		{map[string]string{"fs-version": "5"}, "only RAFS v6"},
		{map[string]string{"prefetch": "usr/bin"}, "not absolute"},
		{map[string]string{"docker-runnable": "yes please"}, "docker-runnable"},
	} {
		_, err := ParseAttrs(tc.attrs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error containing %q", tc.attrs, err, tc.want)
		}
	}
}
