package progress

import (
	"errors"

	"github.com/vbauerster/cupwriter"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

var errNoOutput = errors.New("progress: bars need an output")

// newBar adds a bar: name, bar, done/total in binary units, average rate.
func (p *Progress) newBar(name string, total int64) *mpb.Bar {
	return p.bars.AddBar(max(total, 0),
		mpb.PrependDecorators(decor.Name(name, decor.WC{C: decor.DindentRight | decor.DextraSpace})),
		mpb.AppendDecorators(
			decor.Any(counters, decor.WCSyncSpace),
			decor.OnComplete(decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace), " done"),
		),
	)
}

// counters shows "12.3 MiB / 40.0 MiB", or "12.3 MiB" while the total
// is unknown.
func counters(s decor.Statistics) string {
	if s.Total <= 0 {
		return Size(s.Current)
	}
	return Size(s.Current) + " / " + Size(s.Total)
}

// terminal is the bars' console: a terminal reporting no size (a pseudo
// terminal nobody sized, as under script(1)) counts as 80x24 instead of
// hiding every bar.
type terminal struct{ *cupwriter.Writer }

func (t terminal) GetTermSize() (width, height int, err error) {
	width, height, err = t.Writer.GetTermSize()
	if err != nil || width <= 0 || height <= 0 {
		return 80, 24, nil
	}
	return width, height, nil
}

// aboveBars prints through the bars' container, above the bars; after the
// container is done it writes to the terminal directly.
type aboveBars struct{ p *Progress }

func (a aboveBars) Write(b []byte) (int, error) {
	n, err := a.p.bars.Write(b)
	if err != nil {
		return a.p.out.Write(b)
	}
	return n, nil
}
