package layout

import (
	"errors"
	"fmt"
)

// ErrFormat is wrapped by every error that reports malformed on-disk data.
var ErrFormat = errors.New("rafs: invalid format")

// ErrShortBuffer is returned when a buffer is smaller than the structure.
var ErrShortBuffer = fmt.Errorf("%w: short buffer", ErrFormat)

func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}
