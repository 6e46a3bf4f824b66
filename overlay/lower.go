package overlay

import (
	"context"
	"io"
	"time"
)

// Lower is one node of the read-only lower tree. Implementations must be
// safe for concurrent use. Lookup reports a missing name with an error
// wrapping io/fs.ErrNotExist.
type Lower interface {
	Stat(ctx context.Context) (Stat, error)
	Lookup(ctx context.Context, name string) (Lower, error)
	ReadDir(ctx context.Context) ([]DirEntry, error)
	Readlink(ctx context.Context) (string, error)
	Xattrs(ctx context.Context) ([]Xattr, error)
	Open(ctx context.Context) (LowerFile, error)
}

// LowerFile reads the data of a lower regular file.
type LowerFile interface {
	io.ReaderAt
	io.Closer
}

// Stat is the metadata of a lower node.
type Stat struct {
	Ino      uint64 // unique within the lower tree
	Mode     uint32 // file type and permission bits, as in stat(2)
	Nlink    uint32
	UID, GID uint32
	Rdev     uint64
	Size     int64
	Atime    time.Time
	Mtime    time.Time
	Ctime    time.Time
}

// DirEntry is one name in a lower directory.
type DirEntry struct {
	Name string
	Mode uint32 // file type bits
	Ino  uint64
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}
