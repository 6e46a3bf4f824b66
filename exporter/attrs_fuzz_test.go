package exporter

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/gonydus/nydus/convert"
	"github.com/gonydus/nydus/rafs/layout"
)

// FuzzParseAttrs parses fuzzed --output attributes (three key/value pairs,
// seeded with the known ones). Accepted options must be valid, and written
// back as attributes they must parse to the same options.
func FuzzParseAttrs(f *testing.F) {
	f.Add("name", "reg.example.com/app:1, reg.example.com/app:latest", "push", "true", "chunk-size", "0x10000")
	f.Add("compressor", "lz4_block", "prefetch", "/usr/bin:/etc", "docker-runnable", "")
	f.Add("fs-version", "6", "oci-mediatypes", "false", "registry.insecure", "1")
	f.Add("push", "", "name", "", "chunk-size", "4096")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		o, err := ParseAttrs(map[string]string{k1: v1, k2: v2, k3: v3})
		if err != nil {
			return
		}
		if !layout.ValidChunkSize(uint64(o.ChunkSize)) {
			t.Fatalf("chunk size %#x accepted", o.ChunkSize)
		}
		switch o.Compressor {
		case layout.CompressNone, layout.CompressLZ4, layout.CompressZstd:
		default:
			t.Fatalf("compressor %v accepted", o.Compressor)
		}
		if o.Push && len(o.Names) == 0 {
			t.Fatal("push without a name accepted")
		}
		for _, n := range o.Names {
			if n == "" || n != strings.TrimSpace(n) || strings.Contains(n, ",") {
				t.Fatalf("name %q", n)
			}
		}
		for _, p := range o.Prefetch {
			if !strings.HasPrefix(p, "/") || strings.Contains(p, ":") {
				t.Fatalf("prefetch path %q", p)
			}
		}
		back := map[string]string{
			AttrPush: strconv.FormatBool(o.Push), AttrInsecure: strconv.FormatBool(o.Insecure),
			AttrOCIMediaTypes: strconv.FormatBool(o.OCI), AttrCompressor: o.Compressor.String(),
			AttrChunkSize: fmt.Sprintf("%#x", o.ChunkSize), AttrPrefetch: strings.Join(o.Prefetch, ":"),
			AttrDockerRunnable: strconv.FormatBool(o.Layout == convert.LayoutDockerRunnable),
		}
		if len(o.Names) > 0 {
			back[AttrName] = strings.Join(o.Names, ",")
		}
		again, err := ParseAttrs(back)
		if err != nil {
			t.Fatalf("options %+v written back as %v do not parse: %v", o, back, err)
		}
		if len(o.Prefetch) == 0 {
			o.Prefetch = nil // an empty prefetch list is written as "" and read as none
		}
		if !reflect.DeepEqual(again, o) {
			t.Fatalf("round trip: %+v became %+v", o, again)
		}
	})
}
