package testutil

import (
	"strings"
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				b.Write([]byte("ab"))
				_ = b.Len()
			}
		}()
	}
	wg.Wait()
	if b.Len() != 1600 || b.String() != strings.Repeat("ab", 800) {
		t.Fatalf("%d bytes: %.20q...", b.Len(), b.String())
	}
	got := b.Bytes()
	got[0] = 'x'
	if b.String()[0] != 'a' {
		t.Fatal("Bytes shares the buffer's memory")
	}
}
