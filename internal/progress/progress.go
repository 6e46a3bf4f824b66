package progress

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/cupwriter"
	"github.com/vbauerster/mpb/v8"
	"golang.org/x/term"
)

// Progress shows the trackers started on it. Close it when the work ends.
type Progress struct {
	mode     Mode
	interval time.Duration
	log      *slog.Logger
	out      io.Writer     // the terminal, in Bars mode
	bars     *mpb.Progress // Bars mode
	stop     chan struct{} // ends the Lines ticker
	ticker   sync.WaitGroup

	mu       sync.Mutex
	trackers []*Tracker
}

// New returns a Progress drawing on out (normally os.Stderr). In Auto mode
// it draws bars when out is a terminal and logs lines otherwise.
func New(out *os.File, opts ...Option) (*Progress, error) {
	c := config{interval: DefaultInterval, log: slog.Default()}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if c.mode == Auto {
		c.mode = Lines
		if out != nil && term.IsTerminal(int(out.Fd())) {
			c.mode = Bars
		}
	}
	p := &Progress{mode: c.mode, interval: c.interval, log: c.log, stop: make(chan struct{})}
	switch p.mode {
	case Bars:
		if out == nil {
			return nil, errNoOutput
		}
		p.out = out
		p.bars = mpb.New(mpb.WithConsoleWriter(terminal{cupwriter.New(out, true)}), mpb.WithAutoRefresh(), mpb.WithRefreshRate(150*time.Millisecond))
	case Lines:
		p.ticker.Add(1)
		go p.tick()
	}
	return p, nil
}

// Mode returns the mode in use (never Auto).
func (p *Progress) Mode() Mode { return p.mode }

// Writer returns where other output to the terminal (log records) must
// go while bars are drawn: it prints above the bars. It is nil unless
// the mode is Bars.
func (p *Progress) Writer() io.Writer {
	if p.mode != Bars {
		return nil
	}
	return aboveBars{p}
}

// Start begins tracking a unit of work of total bytes (0 or less:
// unknown, see SetTotal).
func (p *Progress) Start(name string, total int64) *Tracker {
	t := &Tracker{p: p, name: name, start: time.Now()}
	t.total.Store(max(total, 0))
	t.lastAt = t.start
	if p.mode == Bars {
		t.bar = p.newBar(name, total)
	}
	p.mu.Lock()
	p.trackers = append(p.trackers, t)
	p.mu.Unlock()
	return t
}

// Track is Start for callers that take functions: add counts bytes done,
// done ends the unit.
func (p *Progress) Track(name string, total int64) (add func(n int64), done func()) {
	t := p.Start(name, total)
	return t.Add, t.Done
}

// Close aborts the trackers not done, draws the bars' last frame and
// stops the periodic lines.
func (p *Progress) Close() {
	p.mu.Lock()
	ts := p.trackers
	p.mu.Unlock()
	for _, t := range ts {
		t.end(false)
	}
	select {
	case <-p.stop:
		return // closed already
	default:
		close(p.stop)
	}
	p.ticker.Wait()
	if p.bars != nil {
		p.bars.Wait()
	}
}

// Tracker counts the bytes of one unit of work.
type Tracker struct {
	p     *Progress
	name  string
	start time.Time
	n     atomic.Int64
	total atomic.Int64
	ended atomic.Bool
	bar   *mpb.Bar

	// Lines mode: what the previous line reported, for its rate.
	lastN  int64
	lastAt time.Time
}

// Add counts n bytes done.
func (t *Tracker) Add(n int64) {
	t.n.Add(n)
	if t.bar != nil {
		t.bar.IncrInt64(n)
	}
}

// SetTotal sets the total once it is known.
func (t *Tracker) SetTotal(total int64) {
	t.total.Store(total)
	if t.bar != nil && !t.ended.Load() {
		t.bar.SetTotal(total, false)
	}
}

// Done ends the unit of work; its bar shows it complete.
func (t *Tracker) Done() { t.end(true) }

// Abort ends the unit of work unfinished.
func (t *Tracker) Abort() { t.end(false) }

func (t *Tracker) end(complete bool) {
	t.p.mu.Lock()
	ended := t.ended.Swap(true)
	t.p.mu.Unlock()
	if ended || t.bar == nil {
		return
	}
	if complete {
		t.bar.SetTotal(-1, true) // total := current, complete
	} else {
		t.bar.Abort(false)
	}
}

// Reader returns r counting what is read from it into t.
func (t *Tracker) Reader(r io.Reader) io.Reader { return &reader{r: r, t: t} }

type reader struct {
	r io.Reader
	t *Tracker
}

func (r *reader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.t.Add(int64(n))
	}
	return n, err
}
