package targzref

import (
	"bytes"
	"os/exec"
	"testing"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/zran"
)

// upstreamMirror is the bare git mirror of upstream nydus the team reads
// facts from; its zran fixture is a blob.meta as nydusd caches it.
const upstreamMirror = "/work/.mirror/dragonflyoss+nydus/repo"

// TestUpstreamBlobMeta decodes upstream's cached blob.meta fixture (ci data
// padded to 4 KiB, then the header) and re-encodes it byte for byte: the
// chunk-info v2 entries and the zran context table use upstream's layout.
func TestUpstreamBlobMeta(t *testing.T) {
	raw, err := exec.Command("git", "--git-dir="+upstreamMirror, "show",
		"HEAD:tests/texture/zran/233c72f2b6b698c07021c4da367cfe2dff4f049efbaa885ca0ff760ea297865a.blob.meta").Output()
	if err != nil || len(raw) < layout.CCTHeaderSize {
		t.Skipf("upstream fixture unavailable (%v)", err)
	}
	var h layout.CCTHeader
	if err := h.Unmarshal(raw[len(raw)-layout.CCTHeaderSize:]); err != nil {
		t.Fatal(err)
	}
	data := raw[:h.CIUncompressedSize]
	m, err := decodeMeta(h, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Chunks) != 163 || len(m.Contexts) != 21 || m.Contexts[0].In != 10 || len(m.Contexts[0].Dict) != 0 ||
		m.Contexts[1].In != 187761 || len(m.Contexts[1].Dict) != zran.WindowSize || m.Contexts[1].Bits != 5 {
		t.Fatalf("decoded %d chunks, %d contexts, first %+v", len(m.Chunks), len(m.Contexts), m.Contexts[0])
	}
	again, err := encodeCI(m.Chunks, m.Contexts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, data) {
		t.Fatal("re-encoded blob.meta differs from upstream's")
	}
	t.Logf("features %#x, %d chunks, %d contexts, %d bytes of zran data", uint32(h.Features), len(m.Chunks), len(m.Contexts), h.ExtSize)
}
