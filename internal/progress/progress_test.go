package progress

import (
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gonydus/nydus/internal/testutil"
)

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 12_897_484: "12.3 MiB", 40 << 20: "40.0 MiB", 3 << 40: "3.0 TiB"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
	if got := Rate(17<<20, 2*time.Second); got != "8.5 MiB/s" {
		t.Errorf("Rate = %q", got)
	}
}

// TestLines checks Lines mode: a line per running tracker every
// interval, "NAME done of total, rate", none once the tracker is done;
// and Quiet: nothing.
func TestLines(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		var out testutil.Buffer
		log := slog.New(slog.NewTextHandler(&out, nil))
		p, err := New(nil, WithLogger(log), WithInterval(10*time.Millisecond), WithQuiet(quiet))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]Mode{false: Lines, true: Quiet}[quiet]; p.Mode() != want || p.Writer() != nil {
			t.Fatalf("mode %v, want %v", p.Mode(), want)
		}
		tr := p.Start("layer 1/2 sha256:abc…", 40<<20)
		tr.Add(12_897_484)
		time.Sleep(60 * time.Millisecond)
		tr.Done()
		before := out.Len()
		time.Sleep(40 * time.Millisecond)
		p.Close()
		p.Close() // idempotent
		// Close has stopped the ticker: nothing writes to out any more.
		re := regexp.MustCompile(`msg="layer 1/2 sha256:abc… 12\.3 MiB of 40\.0 MiB, [0-9.]+ (B|KiB|MiB)/s" progress="layer 1/2 sha256:abc…" done_bytes=12897484 total_bytes=41943040`)
		n := len(re.FindAllString(out.String(), -1))
		switch {
		case quiet && out.Len() != 0:
			t.Errorf("quiet logged:\n%s", out.String())
		case !quiet && n < 2:
			t.Errorf("%d lines, want periodic ones:\n%s", n, out.String())
		case !quiet && out.Len() != before:
			t.Errorf("lines after Done:\n%s", out.String()[before:])
		}
	}
	if _, err := New(nil, WithInterval(0)); err == nil || !strings.Contains(err.Error(), "interval") {
		t.Errorf("zero interval: %v", err)
	}
}
