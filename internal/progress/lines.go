package progress

import (
	"fmt"
	"time"
)

// tick logs a line per running tracker every interval until Close.
func (p *Progress) tick() {
	defer p.ticker.Done()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			// Under p.mu: once Done returns, its tracker logs no more.
			p.mu.Lock()
			for _, tr := range p.trackers {
				if !tr.ended.Load() {
					tr.logLine(now)
				}
			}
			p.mu.Unlock()
		}
	}
}

// logLine logs "NAME 12.3 MiB of 40.0 MiB, 8.1 MiB/s": the rate is
// over the time since the previous line.
func (t *Tracker) logLine(now time.Time) {
	n, total := t.n.Load(), t.total.Load()
	rate := Rate(n-t.lastN, now.Sub(t.lastAt))
	bps := int64(0)
	if d := now.Sub(t.lastAt); d > 0 {
		bps = int64(float64(n-t.lastN) / d.Seconds())
	}
	t.lastN, t.lastAt = n, now
	msg := fmt.Sprintf("%s %s, %s", t.name, Size(n), rate)
	if total > 0 {
		msg = fmt.Sprintf("%s %s of %s, %s", t.name, Size(n), Size(total), rate)
	}
	t.p.log.Info(msg, "progress", t.name, "done_bytes", n, "total_bytes", total, "bytes_per_second", bps,
		"elapsed", now.Sub(t.start).Round(time.Millisecond))
}
