package rafsfs

import (
	"context"
	"fmt"
	"os"
)

// spliceMin is the smallest READ answered by splice from the cache file.
// A smaller one is copied: one pread and the reply's write cost less than
// splice's pipe round trip (three splices and a drain per READ).
const spliceMin = 128 << 10

// extent is a run of file bytes in a cache file.
type extent struct {
	f     *os.File
	at, n int64
}

// localExtents maps file bytes [off, end) onto cache files, merging
// adjacent runs. ok is false when a chunk they touch is not cached
// uncompressed or must be verified before it is served.
func (n *file) localExtents(ctx context.Context, off, end int64, buf []extent) ([]extent, bool) {
	es, isExt := n.fs.src.(extentSource)
	if !isExt {
		return nil, false
	}
	list := buf[:0]
	for pos := off; pos < end; {
		c, found := n.reader.ChunkAt(pos)
		if !found {
			return nil, false
		}
		f, base, got, cached := es.CachedExtent(ctx, c.Blob, &c.Info)
		if !cached || got != int64(c.Info.UncompressedSize) {
			return nil, false
		}
		in := pos - int64(c.Info.FileOffset)
		want := min(got-in, end-pos)
		if k := len(list) - 1; k >= 0 && list[k].f == f && list[k].at+list[k].n == base+in {
			list[k].n += want
		} else {
			list = append(list, extent{f: f, at: base + in, n: want})
		}
		pos += want
	}
	return list, true
}

// readLocal reads file bytes [off, off+len(p)), clipped at EOF, straight
// from the cache files. ok is false, and nothing is read, when they are not
// all local (see localExtents); the caller then reads through the storage
// chain.
func (n *file) readLocal(ctx context.Context, p []byte, off int64) (k int, ok bool, err error) {
	size := n.reader.Size()
	if off >= size {
		return 0, false, nil
	}
	var buf [4]extent
	list, ok := n.localExtents(ctx, off, min(off+int64(len(p)), size), buf[:])
	if !ok {
		return 0, false, nil
	}
	for _, e := range list {
		if _, err := e.f.ReadAt(p[k:k+int(e.n)], e.at); err != nil {
			return k, true, fmt.Errorf("rafsfs: read nid %d from the cache file: %w", n.nid, err)
		}
		k += int(e.n)
	}
	return k, true, nil
}
