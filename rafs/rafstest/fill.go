package rafstest

import (
	"bytes"
	"context"

	"github.com/gonydus/nydus/internal/tartest"
	"github.com/gonydus/nydus/rafs/builder"
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
