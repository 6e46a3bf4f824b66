package convert

import (
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/gonydus/nydus/internal/progress"
)

// Progress shows how far long work has got (WithProgress): a layer being
// converted, the image's data being read by Check, a source layer being
// flattened.
type Progress interface {
	// Track starts one unit of work of total bytes (0: unknown). add
	// counts bytes done; done is called when the unit ends well (a unit
	// never done was cut short).
	Track(name string, total int64) (add func(n int64), done func())
}

// WithProgress sets where progress goes; the default logs a line per
// running unit every 10 seconds through the logger (WithLogger).
func WithProgress(p Progress) Option {
	return func(c *config) error {
		if p == nil {
			return fmt.Errorf("convert: nil progress")
		}
		c.progress = p
		return nil
	}
}

// startProgress returns the configured progress, or periodic lines on
// c.log; end stops what it started.
func (c *config) startProgress() (p Progress, end func()) {
	if c.progress != nil {
		return c.progress, func() {}
	}
	lines, err := progress.New(nil, progress.WithMode(progress.Lines), progress.WithLogger(c.log))
	if err != nil { // unreachable: the options are valid
		return quietProgress{}, func() {}
	}
	return lines, lines.Close
}

// unitName names a unit of work: "layer 2/5 sha256:abcdef012345…".
func unitName(kind string, index, count int, d digest.Digest) string {
	s := fmt.Sprintf("%s %d/%d", kind, index+1, count)
	if enc := d.Encoded(); len(enc) > 12 {
		s += " " + d.Algorithm().String() + ":" + enc[:12] + "…"
	}
	return s
}

type quietProgress struct{}

func (quietProgress) Track(string, int64) (func(int64), func()) { return func(int64) {}, func() {} }
