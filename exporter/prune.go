package exporter

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Prune removes cache entries unused for longer than maxAge (an entry's
// directory time is its last use) and stale temporary directories of
// interrupted conversions. It returns how many entries it removed.
func (c *Cache) Prune(maxAge time.Duration) (int, error) {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return 0, fmt.Errorf("nydus cache: %w", err)
	}
	cutoff := time.Now().Add(-maxAge)
	removed := 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		path := filepath.Join(c.dir, name)
		if strings.HasPrefix(name, ".tmp-") {
			// In-flight conversions are younger than any sensible maxAge.
			if st, err := os.Stat(path); err == nil && st.ModTime().Before(cutoff) {
				os.RemoveAll(path)
			}
			continue
		}
		unlock := c.lock(name)
		st, err := os.Stat(path)
		if err == nil && st.ModTime().Before(cutoff) {
			if err := os.RemoveAll(path); err == nil {
				removed++
			}
		}
		unlock()
	}
	if removed > 0 {
		c.log.Info("nydus cache pruned", "removed", removed, "max_age", maxAge)
	}
	return removed, nil
}
