package rafsfs_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/daemon/rafsfs"
	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/rafstest"
	"github.com/gonydus/nydus/rafs/tree"
)

// serving is how a test mount serves an image.
type serving int

const (
	nidRoot  serving = iota // FS.RawRoot: nydusd's root image
	nodeTree                // go-fuse's node tree
	pseudo                  // PseudoRoot: an image under nydusd's pseudo root
)

// pseudoName is where mountRaw puts the image under a pseudo root.
const pseudoName = "img"

// mountRaw serves img through rafsfs.RawFS, as nydusd does, and returns
// the image's directory (under the pseudo root, pseudoName) and the
// request counters.
func mountRaw(t *testing.T, img *rafs.Image, src rafs.ChunkSource, how serving, ropts ...rafsfs.RawOption) (string, *rafsfs.RawFS) {
	t.Helper()
	f, err := rafsfs.New(img, src)
	if err != nil {
		t.Fatal(err)
	}
	opts := rafsfs.MountOptions("test")
	opts.RootStableAttr = f.RootStableAttr()
	var inner fuse.RawFileSystem
	switch how {
	case nidRoot:
		inner = f.RawRoot()
	case nodeTree:
		inner = gofs.NewNodeFS(f.Root(), opts)
	case pseudo:
		p := rafsfs.NewPseudoRoot()
		if err := p.Add(pseudoName, f); err != nil {
			t.Fatal(err)
		}
		inner = p
	}
	raw := rafsfs.NewRawFS(inner, ropts...)
	dir := serveRaw(t, raw, opts)
	if how == pseudo {
		dir = filepath.Join(dir, pseudoName)
	}
	return dir, raw
}

// serveRaw mounts raw at a new directory and unmounts it at cleanup.
func serveRaw(t *testing.T, raw fuse.RawFileSystem, opts *gofs.Options) string {
	t.Helper()
	dir := t.TempDir()
	srv, err := fuse.NewServer(raw, dir, &opts.MountOptions)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// walkTree is a metadata-only tree: nd directories of nf files each, a
// sub-directory in each, one directory large enough to need several
// READDIRPLUS answers, and symlinks. It returns the image and the number
// of directories (the root included) and of entries (every path but the
// root, directories included).
func walkTree(t *testing.T, nd, nf, big int) (img *rafs.Image, dirs, entries int) {
	t.Helper()
	img = rafstest.Build(t, func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		dirs = 1
		file := func(i int) *tree.Inode {
			return &tree.Inode{Mode: layout.ModeReg | 0o644, UID: 1000, GID: 1000, Mtime: 1600000000, Size: 0}
		}
		for d := range nd {
			dir := tree.NewDir(0o755)
			root.SetChild(fmt.Sprintf("dir%03d", d), dir)
			sub := tree.NewDir(0o700)
			dir.SetChild("sub", sub)
			dirs, entries = dirs+2, entries+2
			for i := range nf {
				dir.SetChild(fmt.Sprintf("file%04d.go", i), file(i))
				entries++
			}
			for i := range 5 {
				sub.SetChild(fmt.Sprintf("s%d", i), file(i))
				entries++
			}
			dir.SetChild("link", &tree.Inode{Mode: layout.ModeSymlink | 0o777, Target: "sub/s0"})
			entries++
		}
		bigDir := tree.NewDir(0o755)
		root.SetChild("big", bigDir)
		dirs, entries = dirs+1, entries+1
		for i := range big {
			bigDir.SetChild(fmt.Sprintf("%04d-%s", i, strings.Repeat("n", 120)), file(i))
			entries++
		}
		return &tree.Tree{Root: root}, nil
	}).Image
	return img, dirs, entries
}

// findWalk does what `find . -printf '%s %m %U'` does: list every
// directory and lstat every entry. It returns one line per path.
func findWalk(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, fmt.Sprintf("%s %d %o %d", rel, st.Size, st.Mode, st.Uid))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// delta returns the requests counted since before.
func delta(now, before map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for k, v := range now {
		if v > before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

func total(m map[string]uint64) uint64 {
	var n uint64
	for k, v := range m {
		if k != "forget" {
			n += v
		}
	}
	return n
}

// TestWalkRequests counts the FUSE requests of a find-like walk. Cold, the
// kernel knows nothing: it may send at most one request per directory and
// per entry (READDIRPLUS answers a directory's entries with their
// attributes; nothing is asked twice). Warm, the kernel holds every
// dentry, attribute (long timeouts) and directory listing (cached
// directories): the walk must cost (almost) nothing.
//
// The warm tolerance is 1% of the paths: the kernel may drop part of its
// caches under memory pressure (other work on the machine), and each
// dropped dentry or directory page costs one request to refill. A kernel
// that rereads directories or revalidates entries on every walk costs at
// least one request per directory (here 2*nd+2 of them, over 1%).
func TestWalkRequests(t *testing.T) {
	testutil.RequireFUSE(t)
	const nd, nf, big = 40, 60, 2000
	img, dirs, entries := walkTree(t, nd, nf, big)
	for _, tc := range []struct {
		name  string
		how   serving
		ropts []rafsfs.RawOption
	}{
		{"nid-root", nidRoot, []rafsfs.RawOption{rafsfs.Immutable()}},
		{"pseudo", pseudo, []rafsfs.RawOption{rafsfs.Immutable()}},
		{"node-tree-opendir", nodeTree, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, raw := mountRaw(t, img, rafs.NewLocalBlobs("", nil), tc.how, tc.ropts...)
			if tc.ropts != nil && !raw.NoOpendir() {
				t.Log("the kernel does not offer zero-message opendir (CAP_NO_OPENDIR_SUPPORT, Linux 5.1+): OPENDIR and RELEASEDIR are sent")
			}
			reqs := raw.Requests()
			before := reqs.Counts()
			start := time.Now()
			cold := findWalk(t, dir)
			coldTime := time.Since(start)
			afterCold := reqs.Counts()
			start = time.Now()
			warm := findWalk(t, dir)
			warmTime := time.Since(start)
			afterWarm := reqs.Counts()
			c, w := delta(afterCold, before), delta(afterWarm, afterCold)
			t.Logf("%d dirs, %d entries; cold walk %v: %d requests %v; warm walk %v: %d requests %v",
				dirs, entries, coldTime.Round(time.Millisecond), total(c), c, warmTime.Round(time.Millisecond), total(w), w)

			if len(cold) != 1+entries || !slices.Equal(cold, warm) {
				t.Fatalf("walks saw %d and %d paths, want %d (equal)", len(cold), len(warm), 1+entries)
			}
			if !slices.Contains(cold, fmt.Sprintf("big/1999-%s 0 100644 1000", strings.Repeat("n", 120))) ||
				!slices.Contains(cold, "dir039/link 6 120777 0") {
				t.Fatalf("walk misses entries or attributes: %q", cold[:5])
			}
			// Cold: one request per directory and per entry at most.
			if n := total(c); n > uint64(dirs+entries) {
				t.Errorf("cold walk: %d requests for %d dirs + %d entries", n, dirs, entries)
			}
			// Under a pseudo root the walk starts with a LOOKUP of the image.
			var rootLookup uint64
			if tc.how == pseudo {
				rootLookup = 1
			}
			if c["lookup"] != rootLookup || c["getattr"] > 1 {
				t.Errorf("cold walk: READDIRPLUS answers were asked again: %v", c)
			}
			allowed := uint64(dirs+entries) / 100
			if !raw.NoOpendir() {
				// OPENDIR and RELEASEDIR once per directory and walk; the
				// listing itself comes from the kernel's cache.
				allowed += 2 * uint64(dirs)
				if w["readdirplus"]+w["readdir"] > uint64(dirs)/100 {
					t.Errorf("warm walk reread directories: %v", w)
				}
			}
			if n := total(w); n > allowed {
				t.Errorf("warm walk: %d requests, want at most %d: %v", n, allowed, w)
			}
			// A name that does not exist is asked once: the kernel keeps
			// the negative entry.
			for range 3 {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(dir, "dir001", "missing"), &st); err != unix.ENOENT {
					t.Fatalf("lstat of a missing name: %v", err)
				}
			}
			// (RELEASEDIRs of the walk may still arrive.)
			if neg := delta(reqs.Counts(), afterWarm); neg["lookup"] != 1 || total(neg)-neg["releasedir"] != 1 {
				t.Errorf("three lstats of a missing name sent %v, want one LOOKUP", neg)
			}
		})
	}
}

// TestLookupsHoldNoMemory checks that the root image server keeps nothing
// per inode the kernel looked up: after a walk that makes the kernel hold
// every inode, the Go heap (after a collection) has grown by a few bytes
// per inode at most. go-fuse's node tree, for comparison, keeps about 300
// bytes per inode (500 in nydusd) until the kernel forgets it.
//
// The bound, 64 bytes per inode over 40k inodes, leaves 2.5 MiB for what
// the FUSE server itself may keep after a warm-up walk: a request buffer
// is 1 MiB (MaxWrite), and go-fuse starts a reader, with its buffer, when
// all are busy.
func TestLookupsHoldNoMemory(t *testing.T) {
	testutil.RequireFUSE(t)
	const nd, nf = 200, 200
	img, _, entries := walkTree(t, nd, nf, 0)
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for _, tc := range []struct {
		name  string
		how   serving
		limit float64 // bytes per inode
	}{
		{"nid-root", nidRoot, 64},
		{"pseudo", pseudo, 64},
		{"node-tree", nodeTree, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, raw := mountRaw(t, img, rafs.NewLocalBlobs("", nil), tc.how, rafsfs.Immutable())
			findWalk(t, filepath.Join(dir, "dir000")) // warm-up
			h0 := heap()
			n := 0
			err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				n++
				var st unix.Stat_t
				return unix.Lstat(p, &st)
			})
			if err != nil {
				t.Fatal(err)
			}
			h1 := heap()
			per := (float64(h1) - float64(h0)) / float64(entries)
			t.Logf("%d paths: heap %d -> %d bytes, %.1f bytes per looked-up inode; requests %v", n, h0, h1, per, raw.Requests().Counts())
			if n != entries+1 {
				t.Fatalf("walked %d paths, want %d", n, entries+1)
			}
			if tc.limit > 0 && per > tc.limit {
				t.Errorf("%.1f bytes of heap per looked-up inode, want at most %.0f", per, tc.limit)
			}
		})
	}
}

// TestPseudoRootChanges: under a pseudo root served with zero-message
// opendir (the kernel caches every listing), images added and removed
// after the kernel listed the root or looked a name up show at once, and
// the root's nlink is 2 plus the number of images.
func TestPseudoRootChanges(t *testing.T) {
	testutil.RequireFUSE(t)
	img, _, _ := walkTree(t, 2, 3, 0)
	newFS := func(idx uint64) *rafsfs.FS {
		f, err := rafsfs.New(img, rafs.NewLocalBlobs("", nil), rafsfs.WithInodeBase(idx<<56))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	p := rafsfs.NewPseudoRoot()
	testutil.Must(t, p.Add("a", newFS(1)))
	if err := p.Add("a", newFS(2)); err == nil {
		t.Fatal("a second image named a was accepted")
	}
	if err := p.Add("x", newFS(1)); err == nil {
		t.Fatal("a second image with index 1 was accepted")
	}
	raw := rafsfs.NewRawFS(p, rafsfs.Immutable())
	mnt := serveRaw(t, raw, rafsfs.MountOptions("test"))
	if !raw.NoOpendir() {
		t.Log("the kernel does not offer zero-message opendir: the root's listing is not cached anyway")
	}
	check := func(want ...string) {
		t.Helper()
		ents, err := os.ReadDir(mnt)
		testutil.Must(t, err)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, want) {
			t.Fatalf("root lists %q, want %q", names, want)
		}
		var st unix.Stat_t
		testutil.Must(t, unix.Stat(mnt, &st))
		if st.Nlink != uint64(2+len(want)) || st.Ino != 1 {
			t.Fatalf("root: nlink %d ino %d, want nlink %d ino 1", st.Nlink, st.Ino, 2+len(want))
		}
		for _, n := range want {
			testutil.Must(t, unix.Lstat(filepath.Join(mnt, n, "dir001", "link"), &st))
		}
	}
	check("a")
	check("a") // now from the kernel's cache
	// b is looked up (and missing) before it is added.
	if _, err := os.Stat(filepath.Join(mnt, "b")); !os.IsNotExist(err) {
		t.Fatalf("b before it is added: %v", err)
	}
	testutil.Must(t, p.Add("b", newFS(2)))
	check("a", "b")
	var st unix.Stat_t
	testutil.Must(t, unix.Stat(filepath.Join(mnt, "b", "dir000"), &st))
	if st.Ino>>56 != 2 {
		t.Fatalf("b/dir000 has inode %#x, want index 2 in the top byte", st.Ino)
	}
	findWalk(t, mnt)
	before := raw.Requests().Counts()
	findWalk(t, mnt)
	if w := delta(raw.Requests().Counts(), before); raw.NoOpendir() && total(w) > 1 {
		t.Errorf("a second walk of the pseudo root cost %v", w)
	}
	p.Remove("a")
	check("b")
	if _, err := os.Stat(filepath.Join(mnt, "a")); !os.IsNotExist(err) {
		t.Fatalf("a after it is removed: %v", err)
	}
}
