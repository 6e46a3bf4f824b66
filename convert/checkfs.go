package convert

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/storage"
)

// maxDiffs bounds the differences a failed comparison reports.
const maxDiffs = 20

// checkFilesystem reads every file of the image through the rafs reader
// with chunks fetched from the registry (each chunk's digest verified)
// and, given a source image, compares the tree with the source's
// flattened layers.
func (k *checker) checkFilesystem(ctx context.Context) error {
	got, err := k.readImage(ctx)
	if err != nil {
		return err
	}
	k.rep.Paths = len(got)
	if k.source == nil {
		return nil
	}
	want, err := k.flattenSource()
	if err != nil {
		return err
	}
	return compareTrees(want, got)
}

// readImage walks the bootstrap and digests every regular file.
func (k *checker) readImage(ctx context.Context) (flatTree, error) {
	cacheDir, err := os.MkdirTemp(k.c.workDir, "nydus-check-cache-*")
	if err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	defer os.RemoveAll(cacheDir)
	tables, err := storage.ChunkTables(k.img)
	if err != nil {
		return nil, err
	}
	src, err := storage.NewSource(storage.BackendOpen(k.be), storage.WithChunkTables(tables),
		storage.WithCacheDir(cacheDir), storage.WithSourceLogger(k.log))
	if err != nil {
		return nil, err
	}
	defer src.Close()

	t, nids, files, err := k.walkImage()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	read, err := k.digestFiles(ctx, src, t, nids, files)
	if err != nil {
		return nil, err
	}
	for p, n := range t { // hardlinks share their group leader's content
		if n.group != "" && n.group != p {
			n.digest = t[n.group].digest
		}
	}
	k.rep.DataBytes = read
	el := time.Since(start)
	k.log.Info("image data read", "files", len(files), "bytes", k.rep.DataBytes,
		"elapsed", el.Round(time.Millisecond), "MiB/s", mibPerSec(k.rep.DataBytes, el))
	return t, nil
}

// walkImage reads the image's metadata into a tree without file contents;
// it returns the nid of every path and the regular files to digest (the
// first path of each hardlink group).
func (k *checker) walkImage() (flatTree, map[string]uint64, []string, error) {
	t := flatTree{}
	nids := map[string]uint64{}
	groups := map[uint64]string{}
	var files []string
	err := k.img.Walk(func(p string, ino *rafs.Inode) error {
		n := &node{mode: ino.Mode, uid: int(ino.UID), gid: int(ino.GID)}
		switch ino.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			n.size = int64(ino.Size)
			if g, ok := groups[ino.Nid]; ok {
				n.group = g
				t[g].group = g
			} else {
				groups[ino.Nid] = p
				files = append(files, p)
			}
		case unix.S_IFLNK:
			target, err := k.img.Readlink(ino.Nid)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			n.link = target
		case unix.S_IFCHR, unix.S_IFBLK:
			n.rdev = ino.Rdev
		}
		xs, err := k.img.Xattrs(ino.Nid)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, x := range xs {
			if n.xattrs == nil {
				n.xattrs = map[string]string{}
			}
			n.xattrs[x.Name] = string(x.Value)
		}
		t[p] = n
		nids[p] = ino.Nid
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return t, nids, files, nil
}

// digestFiles reads files through src, 2×parallelism at once, sets each
// one's sha256 in t and returns the bytes read.
func (k *checker) digestFiles(ctx context.Context, src *storage.Source, t flatTree, nids map[string]uint64, files []string) (int64, error) {
	var read atomic.Int64
	var dataBytes int64
	for _, p := range files {
		dataBytes += t[p].size
	}
	prog, endProgress := k.c.startProgress()
	defer endProgress()
	add, done := prog.Track(fmt.Sprintf("image data (%d files)", len(files)), dataBytes)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, 2*k.c.parallelism))
	for _, p := range files {
		g.Go(func() error {
			fr, err := k.img.FileReader(gctx, src, nids[p])
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			h := sha256.New()
			n, err := io.Copy(h, &countingReader{r: io.NewSectionReader(fr, 0, fr.Size()), add: add})
			if err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
			read.Add(n)
			mu.Lock()
			t[p].digest = digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil))
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	done()
	return read.Load(), nil
}

// flattenSource applies the source image's layers in order.
func (k *checker) flattenSource() (flatTree, error) {
	layers, err := k.source.img.Layers()
	if err != nil {
		return nil, fmt.Errorf("source layers: %w", err)
	}
	t := newFlatTree()
	prog, endProgress := k.c.startProgress()
	defer endProgress()
	for i, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return nil, fmt.Errorf("source layer %d: %w", i, err)
		}
		var d ocispec.Descriptor
		if i < len(k.source.manifest.Layers) {
			d = k.source.manifest.Layers[i]
		}
		add, done := prog.Track(unitName("source layer", i, len(layers), d.Digest), d.Size)
		start := time.Now()
		err = t.applyLayer(&countingReader{r: rc, add: add})
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("source layer %d: %w", i, err)
		}
		done()
		k.log.Info("source layer flattened", "layer", i, "of", len(layers), "paths", len(t), "elapsed", time.Since(start).Round(time.Millisecond))
	}
	return t, nil
}

// compareTrees lists how got differs from want.
func compareTrees(want, got flatTree) error {
	var diffs []error
	add := func(format string, a ...any) {
		if len(diffs) <= maxDiffs {
			diffs = append(diffs, fmt.Errorf(format, a...))
		}
	}
	// Hardlink groups: source paths linked together must share a target nid.
	for _, p := range slices.Sorted(maps.Keys(want)) {
		w, g := want[p], got[p]
		if g == nil {
			add("%s: missing from the nydus image", p)
			continue
		}
		if w.mode&unix.S_IFMT != g.mode&unix.S_IFMT {
			add("%s: file type %#o, source %#o", p, g.mode&unix.S_IFMT, w.mode&unix.S_IFMT)
			continue
		}
		if p == "/" || w.implicit {
			continue // attributes of directories no entry describes are the builder's choice
		}
		if w.mode != g.mode {
			add("%s: mode %#o, source %#o", p, g.mode, w.mode)
		}
		if w.uid != g.uid || w.gid != g.gid {
			add("%s: owner %d:%d, source %d:%d", p, g.uid, g.gid, w.uid, w.gid)
		}
		if w.size != g.size || w.digest != g.digest {
			add("%s: content %d bytes %s, source %d bytes %s", p, g.size, g.digest, w.size, w.digest)
		}
		if w.link != g.link {
			add("%s: symlink to %q, source %q", p, g.link, w.link)
		}
		if w.rdev != g.rdev {
			add("%s: device %d:%d, source %d:%d", p, unix.Major(g.rdev), unix.Minor(g.rdev), unix.Major(w.rdev), unix.Minor(w.rdev))
		}
		if !maps.Equal(w.xattrs, g.xattrs) {
			add("%s: xattrs %q, source %q", p, g.xattrs, w.xattrs)
		}
		if w.group != "" && got[w.group] != nil && (g.group == "" || g.group != got[w.group].group) {
			add("%s: not hardlinked to %s as in the source", p, w.group)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(got)) {
		if want[p] == nil {
			add("%s: not in the source image", p)
		}
	}
	if len(diffs) > maxDiffs {
		diffs[maxDiffs] = fmt.Errorf("... and more")
	}
	return errors.Join(diffs...)
}
