// Package unpack writes a RAFS filesystem tree back out as an OCI layer tar
// (the inverse of building from a tar): every entry with its mode, owner,
// times, xattrs, link targets, device numbers and hardlink groups, and file
// contents read chunk by chunk and verified by the chunk reader.
package unpack

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// ChunkReader returns the verified uncompressed bytes of a chunk of a blob
// in the tree's blob table.
type ChunkReader interface {
	ReadChunk(ctx context.Context, blob *layout.BlobEntry, c *layout.ChunkInfo) ([]byte, error)
}

// WriteTar writes t as a tar stream to w. Paths are relative ("etc/passwd"),
// directories end in "/", the root is not emitted unless it carries
// attributes worth keeping (it is emitted as "./").
func WriteTar(ctx context.Context, w io.Writer, t *tree.Tree, chunks ChunkReader) error {
	tw := tar.NewWriter(w)
	first := map[*tree.Inode]string{}
	err := t.Walk(func(p string, ino *tree.Inode) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "/")
		if name == "" {
			name = "."
		}
		if ino.Mode&layout.ModeTypeMask == layout.ModeSock {
			// Tar has no socket type (GNU tar skips them too).
			slog.Warn("unpack: skipping socket, tar cannot store it", "path", p)
			return nil
		}
		hdr, err := header(name, ino)
		if err != nil {
			return err
		}
		if !ino.IsDir() { // any type may have several names
			if prev, ok := first[ino]; ok {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = prev
				hdr.Size = 0
				hdr.PAXRecords = nil
				return tw.WriteHeader(hdr)
			}
			first[ino] = name
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("unpack: %s: %w", name, err)
		}
		if ino.IsReg() && ino.Size > 0 {
			if err := writeData(ctx, tw, t, ino, chunks); err != nil {
				return fmt.Errorf("unpack: %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func header(name string, ino *tree.Inode) (*tar.Header, error) {
	h := &tar.Header{
		Name:    name,
		Mode:    int64(ino.Mode & 0o7777),
		Uid:     int(ino.UID),
		Gid:     int(ino.GID),
		ModTime: time.Unix(int64(ino.Mtime), int64(ino.MtimeNsec)),
		Format:  tar.FormatPAX,
	}
	switch ino.Mode & layout.ModeTypeMask {
	case layout.ModeDir:
		h.Typeflag = tar.TypeDir
		if name != "." {
			h.Name += "/"
		} else {
			h.Name = "./"
		}
	case layout.ModeReg:
		h.Typeflag = tar.TypeReg
		h.Size = int64(ino.Size)
	case layout.ModeSymlink:
		h.Typeflag = tar.TypeSymlink
		h.Linkname = ino.Target
	case layout.ModeChr, layout.ModeBlk:
		h.Typeflag = tar.TypeChar
		if ino.Mode&layout.ModeTypeMask == layout.ModeBlk {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor = int64(unix.Major(ino.Rdev))
		h.Devminor = int64(unix.Minor(ino.Rdev))
	case layout.ModeFifo:
		h.Typeflag = tar.TypeFifo
	case layout.ModeSock:
		return nil, fmt.Errorf("unpack: %s: sockets cannot be stored in a tar", name)
	default:
		return nil, fmt.Errorf("unpack: %s: unknown mode %#o", name, ino.Mode)
	}
	if len(ino.Xattrs) > 0 {
		h.PAXRecords = map[string]string{}
		for _, x := range ino.Xattrs {
			h.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
		}
	}
	return h, nil
}

func writeData(ctx context.Context, w io.Writer, t *tree.Tree, ino *tree.Inode, chunks ChunkReader) error {
	var written uint64
	for i, c := range ino.Chunks {
		if int(c.BlobIndex) >= len(t.Blobs) {
			return fmt.Errorf("chunk %d names blob %d of %d", i, c.BlobIndex, len(t.Blobs))
		}
		data, err := chunks.ReadChunk(ctx, t.Blobs[c.BlobIndex], c)
		if err != nil {
			return fmt.Errorf("chunk %d: %w", i, err)
		}
		want := min(uint64(t.ChunkSize), ino.Size-written)
		if uint64(len(data)) < want {
			return fmt.Errorf("chunk %d holds %d bytes, file needs %d", i, len(data), want)
		}
		if _, err := w.Write(data[:want]); err != nil {
			return err
		}
		written += want
	}
	if written != ino.Size {
		return fmt.Errorf("chunks cover %d of %d bytes", written, ino.Size)
	}
	return nil
}
