package rafs

import (
	"errors"
	"fmt"

	"github.com/gonydus/nydus/rafs/layout"
)

// ErrV5 is returned by Open for a RAFS v5 bootstrap.
var ErrV5 = errors.New("rafs: RAFS v5 is not supported (rebuild the image with --fs-version 6)")

// ErrNotDir is returned when a directory operation names another file type.
var ErrNotDir = errors.New("rafs: not a directory")

// ErrNotExist is returned when a name is not in a directory.
var ErrNotExist = errors.New("rafs: no such file or directory")

// formatErr wraps layout.ErrFormat with context.
func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", layout.ErrFormat, fmt.Sprintf(format, args...))
}
