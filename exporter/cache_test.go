package exporter

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/opencontainers/go-digest"
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
	first, err := c.Convert(ctx, l.layer().DiffID, l.layer().Open, o)
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
	second, err := c.Convert(ctx, l.layer().DiffID, l.layer().Open, o)
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
	third, err := c.Convert(ctx, l.layer().DiffID, l.layer().Open, &o2)
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
	_, err = c.Convert(ctx, wrong, l.layer().Open, o)
	if err == nil || !strings.Contains(err.Error(), "hashes to") {
		t.Fatalf("got %v, want a diff id mismatch", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("cache keeps %d entries after a failed conversion", len(ents))
	}
}

func TestCacheRebuildsDamagedEntry(t *testing.T) {
	ctx := context.Background()
	c, err := NewCache(t.TempDir(), quiet)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ParseAttrs(nil)
	l := &tarLayer{data: makeTar(t, file{name: "a", data: "hello"})}
	first, err := c.Convert(ctx, l.layer().DiffID, l.layer().Open, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(first.Blob, 10); err != nil {
		t.Fatal(err)
	}
	again, err := c.Convert(ctx, l.layer().DiffID, l.layer().Open, o)
	if err != nil {
		t.Fatal(err)
	}
	if again.Cached || l.opens != 2 || again.Digest != first.Digest {
		t.Fatalf("damaged entry: cached=%v opens=%d", again.Cached, l.opens)
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
	}, o)
	if err == nil || !strings.Contains(err.Error(), "permission") {
		t.Fatalf("got %v", err)
	}
}
