package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/gonydus/nydus/internal/progress"
)

// ProgressIntervalEnv names the environment variable setting how often
// progress lines are logged when stderr is not a terminal (a Go duration,
// default 10s; tests set it short).
const ProgressIntervalEnv = "NYDUS_PROGRESS_INTERVAL"

// NewProgress returns a command's progress display on stderr: bars when
// stderr is a terminal (log records to stderr are then printed above
// them), else periodic lines logged through l, nothing when quiet. done
// draws the last frame and puts the log back.
func NewProgress(l *Log, quiet bool) (p *progress.Progress, done func(), err error) {
	opts := []progress.Option{progress.WithLogger(l.Logger()), progress.WithQuiet(quiet)}
	if v := os.Getenv(ProgressIntervalEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, nil, fmt.Errorf("%s=%q: want a positive duration such as 10s", ProgressIntervalEnv, v)
		}
		opts = append(opts, progress.WithInterval(d))
	}
	p, err = progress.New(os.Stderr, opts...)
	if err != nil {
		return nil, nil, err
	}
	restore := l.RedirectStderr(p.Writer())
	return p, func() { p.Close(); restore() }, nil
}
