package rafstest

import (
	"bytes"
	"context"
	"testing"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/source"
	"github.com/gonydus/nydus/rafs/tree"
)

// Dir fills an image from the directory dir (source.FromDir).
func Dir(dir string, opts ...source.Option) builder.FillFunc {
	return func(ctx context.Context, w builder.FileWriter) (*tree.Tree, error) {
		return source.FromDir(ctx, dir, w, opts...)
	}
}

// Tar fills an image from a tar stream of entries (source.FromTar).
func Tar(entries ...tartest.Entry) builder.FillFunc {
	return func(ctx context.Context, w builder.FileWriter) (*tree.Tree, error) {
		var buf bytes.Buffer
		if err := tartest.Write(&buf, entries...); err != nil {
			return nil, err
		}
		return source.FromTar(ctx, &buf, w)
	}
}

// AddFile writes data through w and adds it to dir as name: a regular
// file with the permission bits of attr.Mode and attr's owner, times and
// xattrs (the file type, Size and Chunks are set here). It fails tb when
// the write fails.
func AddFile(tb testing.TB, w builder.FileWriter, dir *tree.Inode, name string, data []byte, attr tree.Inode) *tree.Inode {
	tb.Helper()
	chunks, err := w.WriteFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		tb.Fatalf("write %s: %v", name, err)
	}
	ino := attr
	ino.Mode = layout.ModeReg | attr.Mode&0o7777
	ino.Size, ino.Chunks = uint64(len(data)), chunks
	dir.SetChild(name, &ino)
	return &ino
}
