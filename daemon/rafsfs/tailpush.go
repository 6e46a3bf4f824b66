package rafsfs

import (
	"context"
	"fmt"
)

// DefaultTailPush is how much of a file's tail a READ may push into the
// kernel's page cache: one default Linux readahead window. See pushTail.
const DefaultTailPush = 128 << 10

// DisableTailPush turns pushing off. nydusd calls it when requests are
// handled one at a time (--thread-num 1) or inline on io_uring queues: a
// push waits for page locks that a concurrent READ of the same pages holds,
// and that READ needs another handler to finish.
func (f *FS) DisableTailPush() { f.tailPush.Store(0) }

// pushTail stores the rest of the file, from end to EOF, in the kernel's
// page cache with FUSE_NOTIFY_STORE, when that rest is at most the tail push
// limit and every byte of it is already in the local chunk cache.
//
// The kernel reads a small file in two READs when a program reads it in
// small pieces: a first readahead window of 32 KiB, then the rest. The
// second READ is a full round trip to this daemon; a notify written while
// answering the first costs one write and saves it. Nothing is fetched from
// the backend for a push, so a lazily pulled image pulls no more than it did.
// The tail is read from the cache files, not through the chunk cache's
// whole-chunk reads.
func (n *file) pushTail(ctx context.Context, end int64) error {
	limit := n.fs.tailPush.Load()
	size := n.reader.Size()
	if limit == 0 || end <= 0 || end >= size || size-end > limit {
		return nil
	}
	buf := make([]byte, size-end)
	k, ok, err := n.readLocal(ctx, buf, end)
	if !ok {
		return nil
	}
	if err != nil {
		return err
	}
	buf = buf[:k]
	if errno := n.store(end, buf); errno != 0 {
		return fmt.Errorf("rafsfs: store tail of nid %d in the page cache: %w", n.nid, errno)
	}
	n.fs.stats.pushed(int64(len(buf)))
	return nil
}
