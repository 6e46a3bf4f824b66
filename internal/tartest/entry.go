package tartest

import (
	"archive/tar"
	"path"
	"time"
)

// MTime is the modification time entries get unless ModTime says another.
var MTime = time.Unix(1700000000, 0)

// OCI whiteout names.
const (
	WhiteoutPrefix = ".wh."
	OpaqueName     = ".wh..wh..opq"
)

// Entry is one member of a tar stream: its header and, for a regular
// file, its content (Size is set from it when written).
type Entry struct {
	Header tar.Header
	Data   []byte
}

// Option changes an entry.
type Option func(*Entry)

func entry(typ byte, name string, mode int64, opts []Option) Entry {
	e := Entry{Header: tar.Header{Typeflag: typ, Name: name, Mode: mode, ModTime: MTime}}
	for _, o := range opts {
		o(&e)
	}
	return e
}

// File is a regular file (mode 0644) holding data.
func File(name, data string, opts ...Option) Entry {
	e := entry(tar.TypeReg, name, 0o644, opts)
	if e.Data == nil {
		e.Data = []byte(data)
	}
	return e
}

// Dir is a directory (mode 0755).
func Dir(name string, opts ...Option) Entry { return entry(tar.TypeDir, name, 0o755, opts) }

// Symlink is a symbolic link to target (mode 0777).
func Symlink(name, target string, opts ...Option) Entry {
	e := entry(tar.TypeSymlink, name, 0o777, opts)
	e.Header.Linkname = target
	return e
}

// Hardlink is a hard link to the earlier entry target.
func Hardlink(name, target string, opts ...Option) Entry {
	e := entry(tar.TypeLink, name, 0o644, opts)
	e.Header.Linkname = target
	return e
}

// Char is a character device (mode 0644).
func Char(name string, major, minor int64, opts ...Option) Entry {
	e := entry(tar.TypeChar, name, 0o644, opts)
	e.Header.Devmajor, e.Header.Devminor = major, minor
	return e
}

// Block is a block device (mode 0644).
func Block(name string, major, minor int64, opts ...Option) Entry {
	e := entry(tar.TypeBlock, name, 0o644, opts)
	e.Header.Devmajor, e.Header.Devminor = major, minor
	return e
}

// Fifo is a named pipe (mode 0644).
func Fifo(name string, opts ...Option) Entry { return entry(tar.TypeFifo, name, 0o644, opts) }

// Whiteout is the OCI whiteout deleting name from the layers below: an
// empty file .wh.<base> beside it.
func Whiteout(name string, opts ...Option) Entry {
	dir, base := path.Split(name)
	return File(dir+WhiteoutPrefix+base, "", opts...)
}

// Opaque is the OCI marker that hides the lower contents of dir.
func Opaque(dir string, opts ...Option) Entry {
	return File(path.Join(dir, OpaqueName), "", opts...)
}

// Header is an entry with a header given whole (for what the other
// constructors do not make: hostile names, global headers, sparse files),
// written as it is but for Size, which data sets for a regular file.
func Header(h tar.Header, data string) Entry { return Entry{Header: h, Data: []byte(data)} }

// Mode sets the permission bits (and setuid, setgid, sticky).
func Mode(m int64) Option { return func(e *Entry) { e.Header.Mode = m } }

// Owner sets the owner and group ids.
func Owner(uid, gid int) Option { return func(e *Entry) { e.Header.Uid, e.Header.Gid = uid, gid } }

// ModTime sets the modification time.
func ModTime(t time.Time) Option { return func(e *Entry) { e.Header.ModTime = t } }

// Xattr adds the extended attribute key=value (a SCHILY.xattr PAX record).
func Xattr(key, value string) Option { return PAX("SCHILY.xattr."+key, value) }

// PAX adds a PAX record.
func PAX(key, value string) Option {
	return func(e *Entry) {
		if e.Header.PAXRecords == nil {
			e.Header.PAXRecords = map[string]string{}
		}
		e.Header.PAXRecords[key] = value
	}
}

// Format sets the header format.
func Format(f tar.Format) Option { return func(e *Entry) { e.Header.Format = f } }

// Bytes sets a regular file's content from b (for binary data).
func Bytes(b []byte) Option { return func(e *Entry) { e.Data = b } }
