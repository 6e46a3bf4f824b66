package exporter

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/gonydus/nydus/rafs/layout"
)

func TestCacheConvertsOnce(t *testing.T) {
	ctx := context.Background()
	c, err := NewCache(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ParseAttrs(nil)
	l := &tarLayer{data: makeTar(t, file{name: "etc/"}, file{name: "etc/hosts", data: strings.Repeat("127.0.0.1 x\n", 5000)},
		file{name: "bin/", data: ""}, file{name: "bin/sh", link: "busybox"})}
	first, err := c.Convert(ctx, l.layer().DiffID, l.layer().Open, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Cached || l.opens != 1 {
		t.Fatalf("first conversion: cached=%v opens=%d", first.Cached, l.opens)
	}
	b, err := os.ReadFile(first.Blob)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(b) != first.Digest || int64(len(b)) != first.Size {
		t.Fatalf("blob %s/%d, recorded %s/%d", digest.FromBytes(b), len(b), first.Digest, first.Size)
	}
	second, err := c.Convert(ctx, l.layer().DiffID, l.layer().Open, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Cached || l.opens != 1 || second.Digest != first.Digest {
		t.Fatalf("second conversion: cached=%v opens=%d digest %s vs %s", second.Cached, l.opens, second.Digest, first.Digest)
	}
	tr, err := second.Tree()
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Blobs) != 1 || tr.Blobs[0].ID() != first.Digest.Encoded() {
		t.Fatalf("tree blob table %v", tr.Blobs)
	}
	if tr.Lookup("/etc/hosts") == nil {
		t.Fatal("tree lacks /etc/hosts")
	}

	// Other blob options are another entry.
	o2 := *o
	o2.Compressor = layout.CompressLZ4
	third, err := c.Convert(ctx, l.layer().DiffID, l.layer().Open, &o2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if third.Cached || l.opens != 2 || third.Digest == first.Digest {
		t.Fatalf("lz4 conversion: cached=%v opens=%d", third.Cached, l.opens)
	}
}

func TestCacheRejectsWrongDiffID(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := NewCache(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ParseAttrs(nil)
	l := &tarLayer{data: makeTar(t, file{name: "a", data: "a"})}
	wrong := digest.FromString("something else")
	_, err = c.Convert(ctx, wrong, l.layer().Open, o, nil)
	if err == nil || !strings.Contains(err.Error(), "hashes to") {
		t.Fatalf("got %v, want a diff id mismatch", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("cache keeps %d entries after a failed conversion", len(ents))
	}
}

// TestCacheRebuildsDamagedEntry: an entry whose blob or bootstrap
// changed since it was built (truncated, or one byte flipped at the same
// size) is converted again, never pushed as it is.
func TestCacheRebuildsDamagedEntry(t *testing.T) {
	flip := func(name string) error {
		b, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0x01
		return os.WriteFile(name, b, 0o600)
	}
	for name, damage := range map[string]func(l *ConvertedLayer) error{
		"truncated blob": func(l *ConvertedLayer) error { return os.Truncate(l.Blob, 10) },
		"flipped blob":   func(l *ConvertedLayer) error { return flip(l.Blob) },
		"flipped boot":   func(l *ConvertedLayer) error { return flip(l.Boot) },
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			c, err := NewCache(t.TempDir(), quiet)
			if err != nil {
				t.Fatal(err)
			}
			o, _ := ParseAttrs(nil)
			l := &tarLayer{data: makeTar(t, file{name: "a", data: strings.Repeat("hello ", 1000)})}
			first, err := c.Convert(ctx, l.layer().DiffID, l.layer().Open, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := damage(first); err != nil {
				t.Fatal(err)
			}
			again, err := c.Convert(ctx, l.layer().DiffID, l.layer().Open, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			if again.Cached || l.opens != 2 || again.Digest != first.Digest {
				t.Fatalf("damaged entry: cached=%v opens=%d", again.Cached, l.opens)
			}
			if got, _ := fileDigest(again.Blob); got != again.Digest {
				t.Fatalf("rebuilt blob hashes to %s, want %s", got, again.Digest)
			}
		})
	}
}

func TestCacheOpenError(t *testing.T) {
	c, err := NewCache(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ParseAttrs(nil)
	_, err = c.Convert(context.Background(), digest.FromString("x"), func(context.Context) (io.ReadCloser, error) {
		return nil, os.ErrPermission
	}, o, nil)
	if err == nil || !strings.Contains(err.Error(), "permission") {
		t.Fatalf("got %v", err)
	}
}

func TestCacheReportsProgress(t *testing.T) {
	c, err := NewCache(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ParseAttrs(nil)
	l := &tarLayer{data: makeTar(t, file{name: "big", data: strings.Repeat("x", 3<<20)})}
	var read int64
	if _, err := c.Convert(context.Background(), l.layer().DiffID, l.layer().Open, o, func(n int64) { read += n }); err != nil {
		t.Fatal(err)
	}
	if read != int64(len(l.data)) {
		t.Fatalf("progress counted %d bytes of %d", read, len(l.data))
	}
}

func TestCachePrune(t *testing.T) {
	dir := t.TempDir()
	c, err := NewCache(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ParseAttrs(nil)
	old := &tarLayer{data: makeTar(t, file{name: "old", data: "old"})}
	fresh := &tarLayer{data: makeTar(t, file{name: "fresh", data: "fresh"})}
	lo, err := c.Convert(context.Background(), old.layer().DiffID, old.layer().Open, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Convert(context.Background(), fresh.layer().DiffID, fresh.layer().Open, o, nil); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Dir(lo.Blob), long, long); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Prune(24 * time.Hour); err != nil || n != 1 {
		t.Fatalf("pruned %d: %v", n, err)
	}
	if _, err := c.Convert(context.Background(), fresh.layer().DiffID, fresh.layer().Open, o, nil); err != nil || fresh.opens != 1 {
		t.Fatalf("fresh entry lost (opens %d): %v", fresh.opens, err)
	}
	if l, err := c.Convert(context.Background(), old.layer().DiffID, old.layer().Open, o, nil); err != nil || l.Cached {
		t.Fatalf("old entry kept: %v", err)
	}
}
