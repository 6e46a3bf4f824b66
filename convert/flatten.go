package convert

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs/compress"
	"github.com/gonydus/nydus/rafs/layout"
)

// node is one path of a flattened image: what check compares.
type node struct {
	mode     uint32 // st_mode: type and permission bits
	uid, gid int
	size     int64
	digest   digest.Digest // regular files: sha256 of the content
	link     string        // symlink target
	rdev     uint64
	xattrs   map[string]string
	implicit bool   // a parent directory no tar entry describes
	group    string // first path of the node's hardlink group
}

// flatTree is an image flattened the way docker and containerd unpack
// layers: path ("/a/b") to node.
type flatTree map[string]*node

// newFlatTree returns a tree holding only the root directory.
func newFlatTree() flatTree {
	return flatTree{"/": {mode: unix.S_IFDIR | 0o755, implicit: true}}
}

// pending is a tar entry of the layer being applied, content digested.
type pending struct {
	name string
	hdr  *tar.Header
	node *node
}

// applyLayer applies one layer tar (plain, gzip or zstd) with OCI
// whiteouts: ".wh.NAME" deletes NAME from lower layers, ".wh..wh..opq"
// hides the directory's lower contents; both apply before the layer's own
// entries, which they never hide.
func (t flatTree) applyLayer(r io.Reader) error {
	entries, err := readLayer(r)
	if err != nil {
		return err
	}
	// Whiteouts first: they only hide what lower layers hold.
	for _, e := range entries {
		dir, base := path.Split(e.name)
		dir = path.Clean(dir)
		switch {
		case base == ".wh..wh..opq":
			t.removeUnder(dir)
		case strings.HasPrefix(base, ".wh."):
			t.remove(path.Join(dir, strings.TrimPrefix(base, ".wh.")))
		}
	}
	for _, e := range entries {
		if base := path.Base(e.name); strings.HasPrefix(base, ".wh.") || e.name == "/" {
			continue
		}
		n := e.node
		if n == nil { // hardlink
			target := path.Clean("/" + e.hdr.Linkname)
			tn := t[target]
			if tn == nil || tn.mode&unix.S_IFMT == unix.S_IFDIR {
				return fmt.Errorf("source layer: hardlink %s to missing or directory %s", e.name, target)
			}
			if tn.group == "" {
				tn.group = target
			}
			c := *tn
			n = &c
		}
		t.parents(e.name)
		old := t[e.name]
		if old != nil && (old.mode&unix.S_IFMT != unix.S_IFDIR || n.mode&unix.S_IFMT != unix.S_IFDIR) {
			t.remove(e.name)
		}
		t[e.name] = n
	}
	return nil
}

// readLayer reads one layer tar (plain, gzip or zstd) to its end and returns
// its file entries in order, regular files digested; hardlinks have no node.
func readLayer(r io.Reader) ([]pending, error) {
	tr, _, err := compress.NewStreamReader(r)
	if err != nil {
		return nil, fmt.Errorf("source layer: %w", err)
	}
	defer tr.Close()
	rd := tar.NewReader(tr)
	var entries []pending
	for {
		h, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("source layer: %w", err)
		}
		p := path.Clean("/" + h.Name)
		n, ok, err := tarNode(h, rd)
		if err != nil {
			return nil, fmt.Errorf("source layer: %s: %w", p, err)
		}
		if !ok {
			continue // PAX globals and the like carry no file
		}
		entries = append(entries, pending{name: p, hdr: h, node: n})
	}
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return nil, fmt.Errorf("source layer: %w", err)
	}
	return entries, nil
}

// tarNode returns the node of the tar entry h, digesting a regular file's
// content from rd: nil for a hardlink (resolved in order when applied), and
// false for entries that carry no file.
func tarNode(h *tar.Header, rd io.Reader) (*node, bool, error) {
	n := &node{mode: uint32(h.Mode) & 0o7777, uid: h.Uid, gid: h.Gid}
	switch h.Typeflag {
	case tar.TypeReg: // tar.Reader turns the legacy TypeRegA into TypeReg or TypeDir
		n.mode |= unix.S_IFREG
		n.size = h.Size
		hs := sha256.New()
		if _, err := io.Copy(hs, rd); err != nil {
			return nil, false, err
		}
		n.digest = digest.NewDigestFromBytes(digest.SHA256, hs.Sum(nil))
	case tar.TypeDir:
		n.mode |= unix.S_IFDIR
	case tar.TypeSymlink:
		n.mode |= unix.S_IFLNK
		n.link = h.Linkname
	case tar.TypeChar:
		n.mode |= unix.S_IFCHR
		n.rdev = unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
	case tar.TypeBlock:
		n.mode |= unix.S_IFBLK
		n.rdev = unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
	case tar.TypeFifo:
		n.mode |= unix.S_IFIFO
	case tar.TypeLink:
		return nil, true, nil
	default:
		return nil, false, nil
	}
	for k, v := range h.PAXRecords {
		// Only names RAFS (and Linux) can store: docker and
		// containerd drop the rest when they unpack, too.
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && storableXattr(name) {
			if n.xattrs == nil {
				n.xattrs = map[string]string{}
			}
			n.xattrs[name] = v
		}
	}
	return n, true, nil
}

// parents creates missing parent directories of p.
func (t flatTree) parents(p string) {
	dir := path.Dir(p)
	if dir == p {
		return
	}
	if n := t[dir]; n != nil && n.mode&unix.S_IFMT == unix.S_IFDIR {
		return
	}
	t.parents(dir)
	t.remove(dir)
	t[dir] = &node{mode: unix.S_IFDIR | 0o755, implicit: true}
}

// remove deletes p and, for a directory, everything below it.
func (t flatTree) remove(p string) {
	n := t[p]
	delete(t, p)
	if n != nil && n.mode&unix.S_IFMT == unix.S_IFDIR {
		t.removeUnder(p)
	}
}

// removeUnder deletes everything below directory p.
func (t flatTree) removeUnder(p string) {
	prefix := strings.TrimSuffix(p, "/") + "/"
	for k := range t {
		if strings.HasPrefix(k, prefix) {
			delete(t, k)
		}
	}
}

// storableXattr reports whether an xattr name has a namespace RAFS can
// store (user., trusted., security., the POSIX ACLs).
func storableXattr(name string) bool {
	_, _, err := layout.SplitXattrName(name)
	return err == nil
}
