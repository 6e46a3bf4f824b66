package storage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gonydus/nydus/storage"
)

func TestGateUserReadsGoFirst(t *testing.T) {
	g := storage.NewGate(2)
	ctx := ctxT(t)
	// Prefetch may take only one of two slots.
	if err := g.Acquire(ctx, storage.PriorityPrefetch); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := g.Acquire(short, storage.PriorityPrefetch); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second prefetch slot: %v", err)
	}
	// A user read takes the reserved slot at once.
	if err := g.Acquire(ctx, storage.PriorityUser); err != nil {
		t.Fatal(err)
	}
	if !g.UserBusy() {
		t.Fatal("user fetch in flight not reported")
	}
	// With both slots busy, a waiting user read beats a waiting prefetch.
	order := make(chan storage.Priority, 2)
	go func() {
		g.Acquire(ctx, storage.PriorityPrefetch)
		order <- storage.PriorityPrefetch
	}()
	time.Sleep(10 * time.Millisecond) // let the prefetch queue first
	go func() {
		g.Acquire(ctx, storage.PriorityUser)
		order <- storage.PriorityUser
	}()
	time.Sleep(10 * time.Millisecond)
	g.Release(storage.PriorityPrefetch)
	if first := <-order; first != storage.PriorityUser {
		t.Fatal("queued prefetch was served before a queued user read")
	}
	g.Release(storage.PriorityUser)
	g.Release(storage.PriorityUser)
	if got := <-order; got != storage.PriorityPrefetch {
		t.Fatal("prefetch never served")
	}
	g.Release(storage.PriorityPrefetch)
	if g.UserBusy() {
		t.Fatal("user busy after all user slots were released")
	}
}
