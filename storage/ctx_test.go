package storage_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/storage"
)

// stallReader never answers until its context ends (a hung connection);
// after release is closed it reads from the file.
type stallReader struct {
	inner   *countingReader
	release chan struct{}
	calls   atomic.Int64
}

func (s *stallReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	s.calls.Add(1)
	select {
	case <-s.release:
		return s.inner.ReadAt(ctx, p, off)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func TestReadsAreBoundedByContext(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 256<<10)
	sr := &stallReader{inner: openCounting(t, tb.path), release: make(chan struct{})}
	b := newBlob(t, tb, sr)
	c := tb.chunks[0]

	// The leader's read hangs; a follower with a short deadline gives up
	// on its own, while the leader is still waiting.
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	defer cancelLeader()
	leaderDone := make(chan error, 1)
	go func() {
		_, err := b.ReadChunk(leaderCtx, c, nil)
		leaderDone <- err
	}()
	for sr.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := b.ReadChunk(short, c, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("follower of a hung fetch: %v, want deadline exceeded", err)
	}
	select {
	case err := <-leaderDone:
		t.Fatalf("leader returned %v while its backend hangs", err)
	default:
	}

	// A patient follower survives the leader giving up: it fetches again.
	follower := make(chan error, 1)
	go func() {
		got, err := b.ReadChunk(ctxT(t), c, nil)
		if err == nil && string(got) != string(tb.want[c.Index]) {
			err = errors.New("wrong bytes")
		}
		follower <- err
	}()
	time.Sleep(10 * time.Millisecond) // let it join the leader's fetch
	cancelLeader()
	if err := <-leaderDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader: %v", err)
	}
	close(sr.release)
	if err := <-follower; err != nil {
		t.Fatalf("follower after the leader cancelled: %v", err)
	}
}

func TestClosedBlob(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressLZ4, 100<<10)
	b := newBlob(t, tb, openCounting(t, tb.path), storage.WithCache(openCache(t, t.TempDir(), tb)))
	b.Close()
	if _, err := b.ReadChunk(ctxT(t), tb.chunks[0], nil); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

func TestBadChunkRejected(t *testing.T) {
	tb := buildBlob(t, t.TempDir(), 64<<10, layout.CompressZstd, 100<<10)
	b := newBlob(t, tb, openCounting(t, tb.path))
	bad := *tb.chunks[0]
	bad.Index = tb.entry.ChunkCount
	if _, err := b.ReadChunk(ctxT(t), &bad, nil); !errors.Is(err, storage.ErrBadChunk) {
		t.Fatalf("chunk index out of range: %v", err)
	}
	bad = *tb.chunks[0]
	bad.CompressedOffset = tb.entry.CompressedSize
	if _, err := b.ReadChunk(ctxT(t), &bad, nil); !errors.Is(err, storage.ErrBadChunk) {
		t.Fatalf("chunk past the blob end: %v", err)
	}
}
