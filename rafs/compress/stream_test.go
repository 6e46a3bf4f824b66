package compress

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"

	"github.com/klauspost/compress/zstd"
)

func TestNewStreamReader(t *testing.T) {
	plain := []byte(strings.Repeat("layer tar bytes ", 4096))
	gz, zs := tartest.Gzip(t, plain), tartest.Zstd(t, plain)
	var wide bytes.Buffer
	// A stream whose frame asks for a 256 MiB window.
	ww, err := zstd.NewWriter(&wide, zstd.WithWindowSize(256<<20), zstd.WithSingleSegment(false))
	if err != nil {
		t.Fatal(err)
	}
	ww.Write(plain)
	ww.Flush() // the frame is then a stream of unknown size, with its window
	ww.Write(plain)
	ww.Close()
	for _, c := range []struct {
		in     []byte
		format string
	}{{plain, StreamPlain}, {gz, StreamGzip}, {zs, StreamZstd}, {nil, StreamPlain}} {
		rc, format, err := NewStreamReader(bytes.NewReader(c.in))
		if err != nil || format != c.format {
			t.Fatalf("%s: %s, %v", c.format, format, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		want := plain
		if c.in == nil {
			want = nil
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, %v", c.format, len(got), err)
		}
	}
	rc, _, err := NewStreamReader(bytes.NewReader(wide.Bytes()))
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if err == nil {
		t.Fatal("a zstd stream asking for a 256 MiB window was decoded")
	}
}
