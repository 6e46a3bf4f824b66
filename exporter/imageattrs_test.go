package exporter

import (
	"maps"
	"testing"
)

func TestImageAttrs(t *testing.T) {
	if _, ok, err := ImageAttrs(map[string]string{"name": "r/a:1", "push": "true", "compression": "zstd"}); ok || err != nil {
		t.Fatalf("compression=zstd taken for nydus: %v %v", ok, err)
	}
	got, ok, err := ImageAttrs(map[string]string{"name": "r/a:1", "push": "true", "compression": "nydus", "force-compression": "true",
		"oci-mediatypes": "true", "registry.insecure": "true", "compression-level": "3", "store": "false"})
	if !ok || err != nil {
		t.Fatalf("compression=nydus: %v %v", ok, err)
	}
	want := map[string]string{"name": "r/a:1", "push": "true", "oci-mediatypes": "true", "registry.insecure": "true"}
	if !maps.Equal(got, want) {
		t.Fatalf("attrs %v, want %v", got, want)
	}
	o, err := ParseAttrs(got)
	if err != nil || !o.Push || !o.OCI || !o.Insecure || len(o.Names) != 1 {
		t.Fatalf("%+v %v", o, err)
	}
	for _, bad := range []map[string]string{
		{"compression": "nydus", "push-by-digest": "true"},
		{"compression": "nydus", "annotation.org.opencontainers.image.title": "x"},
		{"compression": "nydus", "push": "true"}, // push without a name
	} {
		if _, ok, err := ImageAttrs(bad); !ok || err == nil {
			t.Errorf("%v: accepted (%v)", bad, ok)
		}
	}
}
