package snapshotterconverter

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"strings"
	"testing"
	"time"
)

// kind is the type of a layer entry.
type kind int

const (
	kReg kind = iota
	kDir
	kSymlink
	kHard // hard link to target (a path of the same layer)
	kFifo
	kChar
)

// entry is one tar entry of a layer.
type entry struct {
	path     string
	kind     kind
	perm     uint32 // permission bits, setuid/setgid/sticky included
	uid, gid int
	data     []byte
	target   string // symlink target, or the hard link's path
	major    uint32
	minor    uint32
	xattrs   map[string]string
	mtime    time.Time
}

var epoch = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func dir(p string, perm uint32, uid, gid int) entry {
	return entry{path: p, kind: kDir, perm: perm, uid: uid, gid: gid}
}

func file(p string, perm uint32, uid, gid int, data []byte) entry {
	return entry{path: p, kind: kReg, perm: perm, uid: uid, gid: gid, data: data}
}

func symlink(p, target string) entry {
	return entry{path: p, kind: kSymlink, perm: 0o777, target: target}
}

func hardlink(p, target string) entry { return entry{path: p, kind: kHard, target: target} }

func whiteout(p string) entry {
	return entry{path: path.Join(path.Dir(p), ".wh."+path.Base(p)), kind: kReg, perm: 0o644}
}

func opaque(d string) entry {
	return entry{path: path.Join(d, ".wh..wh..opq"), kind: kReg, perm: 0o644}
}

func withXattr(e entry, k, v string) entry {
	e.xattrs = map[string]string{k: v}
	return e
}

// pseudo returns n deterministic bytes that do not compress.
func pseudo(seed string, n int) []byte {
	out := make([]byte, 0, n+32)
	h := sha256.Sum256([]byte(seed))
	for len(out) < n {
		out = append(out, h[:]...)
		h = sha256.Sum256(h[:])
	}
	return out[:n]
}

// stamp gives the entries of a layer distinct, deterministic mtimes.
func stamp(layer int, es []entry) []entry {
	for i := range es {
		es[i].mtime = epoch.Add(time.Duration(layer*1000+i) * time.Second)
	}
	return es
}

// layerTar writes es as an OCI layer tar (PAX, xattrs as SCHILY.xattr).
func layerTar(t *testing.T, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.path, Mode: int64(e.perm), Uid: e.uid, Gid: e.gid, ModTime: e.mtime, Format: tar.FormatPAX}
		switch e.kind {
		case kReg:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		case kDir:
			h.Typeflag, h.Name = tar.TypeDir, e.path+"/"
		case kSymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.target
		case kHard:
			h.Typeflag, h.Linkname = tar.TypeLink, e.target
		case kFifo:
			h.Typeflag = tar.TypeFifo
		case kChar:
			h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, int64(e.major), int64(e.minor)
		}
		for k, v := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("tar %s: %v", e.path, err)
		}
		if e.kind == kReg {
			if _, err := tw.Write(e.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rec is what a reader sees of one path: every stat field compared.
// Directory link counts are not compared here (issue 13 item 1, fixed
// and tested in rafs); regular files' link counts are, as hard link groups.
type rec struct {
	Type       string
	Perm       uint32
	UID, GID   uint32
	Size       int64
	Sum        string // sha256 of a regular file's content
	Target     string // symlink target
	Mtime      int64
	Rdev       string
	Xattrs     string
	HardLinked string // the other names of a regular file's inode, sorted
	Nlink      uint64 // link count of a non-directory
}

func (r rec) String() string {
	return fmt.Sprintf("%s %04o %d:%d size=%d sum=%.12s target=%q mtime=%d rdev=%s xattrs=%q nlink=%d links=[%s]",
		r.Type, r.Perm, r.UID, r.GID, r.Size, r.Sum, r.Target, r.Mtime, r.Rdev, r.Xattrs, r.Nlink, r.HardLinked)
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func xattrString(m map[string]string) string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	return strings.Join(kv, ";")
}

// expect returns what reading the layers merged with OCI whiteout rules
// (later layers win; .wh.NAME deletes NAME, .wh..wh..opq hides the lower
// contents of its directory) must show; a single layer is taken as is
// when whiteouts is false (a layer bootstrap keeps its .wh. files).
func expect(t *testing.T, whiteouts bool, layers ...[]entry) map[string]rec {
	t.Helper()
	type final struct {
		e     entry
		inode string // layer:path of the entry that holds the data
	}
	m := map[string]final{}
	dropUnder := func(p string) {
		for k := range m {
			if p == "." || strings.HasPrefix(k, p+"/") {
				delete(m, k)
			}
		}
	}
	for li, es := range layers {
		byPath := map[string]entry{}
		for _, e := range es {
			byPath[e.path] = e
		}
		if whiteouts {
			for _, e := range es {
				base, d := path.Base(e.path), path.Dir(e.path)
				switch {
				case base == ".wh..wh..opq":
					dropUnder(d)
				case strings.HasPrefix(base, ".wh."):
					victim := path.Join(d, strings.TrimPrefix(base, ".wh."))
					delete(m, victim)
					dropUnder(victim)
				}
			}
		}
		for _, e := range es {
			if whiteouts && strings.HasPrefix(path.Base(e.path), ".wh.") {
				continue
			}
			// Every parent is listed in the layer itself (a directory only
			// implied by a tar entry gets the builder's default attributes).
			if d := path.Dir(e.path); d != "." {
				if p, ok := byPath[d]; !ok || p.kind != kDir {
					t.Fatalf("test layer %d: %s has no parent directory entry", li, e.path)
				}
			}
			p := e.path
			inode := fmt.Sprintf("%d:%s", li, p)
			if e.kind == kHard {
				tgt, ok := byPath[e.target]
				if !ok || tgt.kind != kReg {
					t.Fatalf("test layer %d: hard link %s to %s, not a regular file of the layer", li, e.path, e.target)
				}
				inode = fmt.Sprintf("%d:%s", li, e.target)
				e = tgt
			}
			if e.kind != kDir {
				dropUnder(p)
			}
			m[p] = final{e: e, inode: inode}
		}
	}
	groups := map[string][]string{}
	for p, f := range m {
		if f.e.kind == kReg {
			groups[f.inode] = append(groups[f.inode], p)
		}
	}
	out := map[string]rec{}
	for p, f := range m {
		e := f.e
		r := rec{Perm: e.perm, UID: uint32(e.uid), GID: uint32(e.gid), Mtime: e.mtime.Unix(), Xattrs: xattrString(e.xattrs)}
		if e.kind != kDir {
			r.Nlink = 1
		}
		switch e.kind {
		case kReg:
			r.Type, r.Size, r.Sum = "reg", int64(len(e.data)), sum(e.data)
			var others []string
			for _, q := range groups[f.inode] {
				if q != p {
					others = append(others, q)
				}
			}
			slices.Sort(others)
			r.HardLinked = strings.Join(others, ",")
			r.Nlink = uint64(len(others) + 1)
		case kDir:
			r.Type = "dir"
		case kSymlink:
			r.Type, r.Target, r.Size = "symlink", e.target, int64(len(e.target))
		case kFifo:
			r.Type = "fifo"
		case kChar:
			r.Type, r.Rdev = "char", fmt.Sprintf("%d:%d", e.major, e.minor)
		}
		out[p] = r
	}
	return out
}
