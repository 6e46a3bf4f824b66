package source

import (
	"archive/tar"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs/compress"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/tree"
)

// ErrUnsupported reports a tar feature RAFS builders reject, as upstream
// nydus-image does.
var ErrUnsupported = errors.New("source: unsupported tar feature")

// skippedRootNames are eStargz/landmark files upstream drops from layers.
var skippedRootNames = map[string]bool{"stargz.index.json": true, ".prefetch.landmark": true, ".no.prefetch.landmark": true}

// FromTar builds a tree from a tar stream (plain, gzip or zstd), sending
// file data to w as it streams past.
func FromTar(ctx context.Context, r io.Reader, w FileWriter, opts ...Option) (*tree.Tree, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	plain, _, err := compress.NewStreamReader(r)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer plain.Close()
	tr := tar.NewReader(plain)
	b := newTreeBuilder(cfg)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("source: tar: %w", err)
		}
		if err := addTarEntry(b, tr, hdr, w); err != nil {
			return nil, err
		}
	}
	// Drain trailing data so a FIFO writer is not left blocked.
	_, _ = io.Copy(io.Discard, plain)
	return b.tree(), nil
}

func addTarEntry(b *treeBuilder, tr *tar.Reader, hdr *tar.Header, w FileWriter) error {
	name := hdr.Name
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return fmt.Errorf("%w: PAX global header %q", ErrUnsupported, name)
	case tar.TypeCont:
		return fmt.Errorf("%w: contiguous file %q", ErrUnsupported, name)
	case tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil // consumed by archive/tar already
	}
	if parts, err := cleanName(name); err == nil && len(parts) == 1 && skippedRootNames[parts[0]] {
		return nil
	}
	ino := &tree.Inode{
		Mode: uint32(hdr.Mode) & 0o7777, UID: uint32(hdr.Uid), GID: uint32(hdr.Gid),
		// Before 1970: two's complement in the 64-bit field, which the
		// kernel's EROFS and FUSE read as signed seconds.
		Mtime: uint64(hdr.ModTime.Unix()), MtimeNsec: uint32(hdr.ModTime.Nanosecond()),
	}
	xattrs, err := tarXattrs(hdr)
	if err != nil {
		return fmt.Errorf("source: %s: %w", name, err)
	}
	ino.Xattrs = xattrs
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse: // tar.Reader turns the legacy TypeRegA into TypeReg or TypeDir
		// archive/tar expands GNU sparse files (old GNU and PAX 0.x/1.0):
		// holes read as zeros, so they are stored like any other file.
		if hdr.Size < 0 {
			return fmt.Errorf("source: %s: negative size", name)
		}
		ino.Mode |= layout.ModeReg
		ino.Size = uint64(hdr.Size)
		chunks, err := w.WriteFile(tr, hdr.Size)
		if err != nil {
			return fmt.Errorf("source: %s: %w", name, err)
		}
		ino.Chunks = chunks
	case tar.TypeLink:
		target, err := b.lookup(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("source: hardlink %s: %w", name, err)
		}
		if target.IsDir() {
			return fmt.Errorf("%w: hardlink %s to directory %s", ErrUnsafePath, name, hdr.Linkname)
		}
		// Any non-directory shares its inode with its hardlinks, as an
		// extraction of the tar does (and upstream's builders).
		return b.add(name, target)
	case tar.TypeSymlink:
		if hdr.Linkname == "" || len(hdr.Linkname) >= unix.PathMax {
			return fmt.Errorf("source: symlink %s has target length %d", name, len(hdr.Linkname))
		}
		ino.Mode |= layout.ModeSymlink
		ino.Target = hdr.Linkname
	case tar.TypeChar:
		ino.Mode |= layout.ModeChr
		ino.Rdev = unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	case tar.TypeBlock:
		ino.Mode |= layout.ModeBlk
		ino.Rdev = unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	case tar.TypeFifo:
		ino.Mode |= layout.ModeFifo
	case tar.TypeDir:
		ino.Mode |= layout.ModeDir
	default:
		b.cfg.log.Warn("source: skipping tar entry of unknown type", "name", name, "type", string(hdr.Typeflag))
		return nil
	}
	return b.add(name, ino)
}

// tarXattrs collects SCHILY.xattr.* and LIBARCHIVE.xattr.* PAX records.
func tarXattrs(hdr *tar.Header) ([]layout.Xattr, error) {
	var out []layout.Xattr
	seen := map[string]bool{}
	keys := make([]string, 0, len(hdr.PAXRecords))
	for k := range hdr.PAXRecords {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := hdr.PAXRecords[k]
		var name string
		var val []byte
		switch {
		case strings.HasPrefix(k, "SCHILY.xattr."):
			name, val = strings.TrimPrefix(k, "SCHILY.xattr."), []byte(v)
		case strings.HasPrefix(k, "LIBARCHIVE.xattr."):
			n, err := url.PathUnescape(strings.TrimPrefix(k, "LIBARCHIVE.xattr."))
			if err != nil {
				return nil, fmt.Errorf("xattr name %q: %w", k, err)
			}
			d, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				if d, err = base64.RawStdEncoding.DecodeString(v); err != nil {
					return nil, fmt.Errorf("xattr %q: %w", n, err)
				}
			}
			name, val = n, d
		default:
			continue
		}
		if seen[name] {
			continue
		}
		if _, _, err := layout.SplitXattrName(name); err != nil {
			continue // a namespace RAFS cannot store (e.g. system.*)
		}
		seen[name] = true
		out = append(out, layout.Xattr{Name: name, Value: val})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
