package targzref

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/gonydus/nydus/rafs/layout"
)

// TestReadMetaHostileSizes: an entry whose blob.meta claims hundreds of
// MiB in a blob it also claims is large fails after allocating about what
// the blob really holds.
func TestReadMetaHostileSizes(t *testing.T) {
	e := &layout.BlobEntry{Features: layout.BlobZran, CIOffset: 0, CICompressedSize: 900 << 20, CIUncompressedSize: 900 << 20,
		CompressedSize: 1 << 30, UncompressedSize: 1 << 30}
	e.SetID("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	blob := bytes.NewReader(make([]byte, 1024))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadMeta(blob, 1<<30, e)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a blob.meta past the end of the blob was read")
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Fatalf("a 1 KiB blob claiming 900 MiB of blob.meta made ReadMeta allocate %d bytes", grew)
	}
	e.CICompressedSize, e.CIUncompressedSize = maxMetaSize+1, maxMetaSize+1
	if _, err := ReadMeta(blob, 1<<40, e); err == nil {
		t.Fatal("a blob.meta over the limit was accepted")
	}
}
