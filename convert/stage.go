package convert

import (
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
)

// openSourceLayer opens the compressed stream of source layer index,
// counting what is read and passing it to add (when non-nil) for progress.
func openSourceLayer(index int, l v1.Layer, add func(int64)) (digest.Digest, *countingReader, io.Closer, error) {
	h, err := l.Digest()
	if err != nil {
		return "", nil, nil, fmt.Errorf("layer %d: %w", index, err)
	}
	src, err := parseDigest(h.String())
	if err != nil {
		return "", nil, nil, fmt.Errorf("layer %d: %w", index, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return "", nil, nil, fmt.Errorf("layer %d (%s): fetch: %w", index, src, err)
	}
	return src, &countingReader{r: rc, add: add}, rc, nil
}

// stageFile creates a blob staging file in the work directory. done
// closes it, and removes it when *errp holds an error (a close error
// becomes *errp).
func (c *config) stageFile(index int, pattern string) (f *os.File, done func(errp *error), err error) {
	f, err = os.CreateTemp(c.workDir, pattern)
	if err != nil {
		return nil, nil, fmt.Errorf("layer %d: stage blob: %w", index, err)
	}
	return f, func(errp *error) {
		if cerr := f.Close(); *errp == nil && cerr != nil {
			*errp = fmt.Errorf("layer %d: stage blob: %w", index, cerr)
		}
		if *errp != nil {
			os.Remove(f.Name())
		}
	}, nil
}
