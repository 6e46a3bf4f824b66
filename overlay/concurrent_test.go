package overlay_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestConcurrent runs random operations from several goroutines on shared
// lower files (concurrent copy-ups, reads during copy-up, renames,
// creates, deletes, listings); only the errnos the races allow may occur,
// and a read sees the lower content, a writer's, or the empty file a
// truncating open leaves before its write.
func TestConcurrent(t *testing.T) {
	requireMount(t)
	lower := t.TempDir()
	for d := range 4 {
		for f := range 10 {
			p := filepath.Join(lower, fmt.Sprintf("d%d", d), fmt.Sprintf("f%d", f))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("lower-content"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	m := mountOurs(t, newLayers(t, lower))
	allowed := func(err error) bool {
		return err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 300 {
				p := filepath.Join(m, fmt.Sprintf("d%d", rng.IntN(4)), fmt.Sprintf("f%d", rng.IntN(10)))
				own := filepath.Join(m, fmt.Sprintf("d%d", rng.IntN(4)), fmt.Sprintf("g%d-%d", g, i%5))
				var err error
				switch rng.IntN(8) {
				case 0:
					var b []byte
					b, err = os.ReadFile(p)
					if err == nil && string(b) != "lower-content" && string(b) != "upper-content" && len(b) != 0 {
						err = fmt.Errorf("%s: torn content %q", p, b)
					}
				case 1:
					err = writeFile(p, unix.O_WRONLY|unix.O_TRUNC, "upper-content")
				case 2:
					err = unix.Chmod(p, 0o600+uint32(rng.IntN(2))*0o40)
				case 3:
					err = writeFile(own, unix.O_CREAT|unix.O_WRONLY, "own")
				case 4:
					err = unix.Unlink(own)
				case 5:
					err = unix.Rename(own, own+"r")
				case 6:
					_, err = os.ReadDir(filepath.Dir(p))
				case 7:
					err = unix.Setxattr(p, "user.g", []byte{byte(g)}, 0)
				}
				if !allowed(err) {
					errs <- fmt.Errorf("goroutine %d op %d: %w", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
