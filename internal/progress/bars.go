package progress

import (
	"errors"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

var errNoOutput = errors.New("progress: bars need an output")

// newBar adds a bar: name, bar, done/total in binary units, average rate.
func (p *Progress) newBar(name string, total int64) *mpb.Bar {
	return p.bars.AddBar(max(total, 0),
		mpb.PrependDecorators(decor.Name(name, decor.WC{C: decor.DindentRight | decor.DextraSpace})),
		mpb.AppendDecorators(
			decor.Counters(decor.SizeB1024(0), "% .1f / % .1f", decor.WCSyncSpace),
			decor.OnComplete(decor.AverageSpeed(decor.SizeB1024(0), "% .1f", decor.WCSyncSpace), " done"),
		),
	)
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
