package overlay

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/layout"
)

// NewRAFSLower returns the root of img as a Lower, reading file data
// through src. Inode numbers are 1<<56|nid, as daemon/rafsfs reports them;
// an image without explicit owners reports the daemon's uid and gid.
func NewRAFSLower(img *rafs.Image, src rafs.ChunkSource) Lower {
	r := &rafsImage{img: img, src: src, uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}
	return rafsLower{r: r, nid: img.Root()}
}

type rafsImage struct {
	img      *rafs.Image
	src      rafs.ChunkSource
	uid, gid uint32
}

type rafsLower struct {
	r   *rafsImage
	nid uint64
}

const rafsInoBase = 1 << 56

func rafsErr(err error) error {
	if errors.Is(err, rafs.ErrNotExist) {
		return fmt.Errorf("%w: %w", fs.ErrNotExist, err)
	}
	if errors.Is(err, rafs.ErrNotDir) {
		return fmt.Errorf("%w: %w", syscall.ENOTDIR, err)
	}
	return err
}

func (l rafsLower) Stat(ctx context.Context) (Stat, error) {
	ino, err := l.r.img.Inode(l.nid)
	if err != nil {
		return Stat{}, rafsErr(err)
	}
	t := time.Unix(int64(ino.Mtime), int64(ino.MtimeNsec))
	st := Stat{Ino: rafsInoBase | l.nid, Mode: ino.Mode, Nlink: ino.Nlink, UID: ino.UID, GID: ino.GID,
		Rdev: ino.Rdev, Size: int64(ino.Size), Atime: t, Mtime: t, Ctime: t}
	if !l.r.img.ExplicitUIDGID() {
		st.UID, st.GID = l.r.uid, l.r.gid
	}
	return st, nil
}

func (l rafsLower) Lookup(ctx context.Context, name string) (Lower, error) {
	nid, err := l.r.img.Lookup(l.nid, name)
	if err != nil {
		return nil, rafsErr(err)
	}
	return rafsLower{r: l.r, nid: nid}, nil
}

func (l rafsLower) ReadDir(ctx context.Context) ([]DirEntry, error) {
	ents, err := l.r.img.ReadDir(l.nid)
	if err != nil {
		return nil, rafsErr(err)
	}
	out := make([]DirEntry, 0, len(ents))
	for _, e := range ents {
		if e.Name == "." || e.Name == ".." {
			continue
		}
		out = append(out, DirEntry{Name: e.Name, Mode: layout.ModeOfFileType(e.FileType), Ino: rafsInoBase | e.Nid})
	}
	return out, nil
}

func (l rafsLower) Readlink(ctx context.Context) (string, error) {
	t, err := l.r.img.Readlink(l.nid)
	return t, rafsErr(err)
}

func (l rafsLower) Xattrs(ctx context.Context) ([]Xattr, error) {
	xs, err := l.r.img.Xattrs(l.nid)
	if err != nil {
		return nil, rafsErr(err)
	}
	out := make([]Xattr, len(xs))
	for i, x := range xs {
		out[i] = Xattr{Name: x.Name, Value: x.Value}
	}
	return out, nil
}

func (l rafsLower) Open(ctx context.Context) (LowerFile, error) {
	// The reader outlives the open request: it must not be bound to ctx.
	fr, err := l.r.img.FileReader(context.Background(), l.r.src, l.nid)
	if err != nil {
		return nil, rafsErr(err)
	}
	return rafsFile{fr}, nil
}

type rafsFile struct{ *rafs.FileReader }

func (rafsFile) Close() error { return nil }
