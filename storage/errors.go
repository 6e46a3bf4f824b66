package storage

import (
	"errors"

	"github.com/gonydus/nydus/rafs"
)

// ErrDigestMismatch reports chunk data whose digest or CRC-32C does not
// match the bootstrap. It is rafs.ErrDigestMismatch, so errors.Is works
// with either name. A FUSE layer maps it to EIO.
var ErrDigestMismatch = rafs.ErrDigestMismatch

// ErrClosed is returned by reads on a closed Blob or Source.
var ErrClosed = errors.New("storage: closed")

// ErrBadChunk reports a chunk description that does not fit its blob.
var ErrBadChunk = errors.New("storage: chunk does not fit its blob")
