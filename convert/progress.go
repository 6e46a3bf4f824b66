package convert

import "time"

// progressInterval is how often long work logs progress.
const progressInterval = 10 * time.Second

// periodically calls report every progressInterval until stop is called.
func periodically(report func(elapsed time.Duration)) (stop func()) {
	start := time.Now()
	t := time.NewTicker(progressInterval)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				report(time.Since(start))
			}
		}
	}()
	return func() { t.Stop(); close(quit) }
}
