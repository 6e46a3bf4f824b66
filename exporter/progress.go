package exporter

import (
	"context"
	"sync"
	"time"

	"github.com/moby/buildkit/util/progress"
)

// progressEvery is how many bytes pass between progress updates.
const progressEvery = 4 << 20

// bkProgress shows steps as status lines of the exporter's vertex in
// buildx's progress display ("converting layer 1/3 … 12.5MB / 40MB").
type bkProgress struct{ ctx context.Context }

func (p bkProgress) Start(name string, total int64) Step {
	pw, _, _ := progress.NewFromContext(p.ctx)
	now := time.Now()
	s := &bkStep{pw: pw, id: name, st: progress.Status{Started: &now, Total: int(total)}}
	s.pw.Write(s.id, s.st)
	return s
}

type bkStep struct {
	pw      progress.Writer
	id      string
	mu      sync.Mutex
	st      progress.Status
	pending int64
}

func (s *bkStep) Advance(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Current += int(n)
	if s.pending += n; s.pending >= progressEvery {
		s.pending = 0
		s.pw.Write(s.id, s.st)
	}
}

func (s *bkStep) Done(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		now := time.Now()
		s.st.Completed = &now
		if s.st.Total > 0 {
			s.st.Current = s.st.Total
		}
		s.pw.Write(s.id, s.st)
	}
	s.pw.Close()
	return err
}
