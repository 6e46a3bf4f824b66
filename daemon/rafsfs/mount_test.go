package rafsfs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/daemon/rafsfs"
	"github.com/gonydus/nydus/internal/statcmp"
	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/builder"
	"github.com/gonydus/nydus/rafs/export"
	"github.com/gonydus/nydus/rafs/layout"
	"github.com/gonydus/nydus/rafs/rafstest"
	"github.com/gonydus/nydus/rafs/tree"
)

var upstreamDir = testutil.TestdataPath("upstream-nydus")

// mount serves img at a new directory as nydusd serves its root image
// (FS.RawRoot, zero-message opendir when the kernel offers it) and
// unmounts at cleanup.
func mount(t *testing.T, img *rafs.Image, src rafs.ChunkSource) string {
	t.Helper()
	dir, _ := mountRaw(t, img, src, nidRoot, rafsfs.Immutable())
	return dir
}

// mountNodes serves img through go-fuse's node tree, as nydusd serves an
// image under its pseudo root.
func mountNodes(t *testing.T, img *rafs.Image, src rafs.ChunkSource) string {
	t.Helper()
	dir, _ := mountRaw(t, img, src, nodeTree)
	return dir
}

// mountPseudo serves img under a pseudo root, as nydusd serves the images
// of its shared mode (PseudoRoot, zero-message opendir).
func mountPseudo(t *testing.T, img *rafs.Image, src rafs.ChunkSource) string {
	t.Helper()
	dir, _ := mountRaw(t, img, src, pseudo, rafsfs.Immutable())
	return dir
}

func TestMountUpstreamVector(t *testing.T) {
	testutil.RequireFUSE(t)
	boot := testutil.ReadTestdata(t, "upstream-nydus", "bootstrap/rafs-v6-2.2.boot")
	img, err := rafs.Open(bytes.NewReader(boot), int64(len(boot)))
	if err != nil {
		t.Fatal(err)
	}
	dir := mount(t, img, rafs.NewLocalBlobs(filepath.Join(upstreamDir, "blobs"), nil))
	if err := fstest.TestFS(os.DirFS(dir), "lib.rs", "sync_io.rs"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "lib.rs"))
	if err != nil || len(b) != 16931 || !bytes.Contains(b, []byte("fn ")) {
		t.Fatalf("lib.rs: %d bytes, %v", len(b), err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "lib.rs"), &st); err != nil {
		t.Fatal(err)
	}
	nid, _ := img.LookupPath("lib.rs")
	if st.Ino != 1<<56|nid {
		t.Fatalf("st_ino %#x, want %#x", st.Ino, 1<<56|nid)
	}
}

type builtImage struct {
	img   *rafs.Image
	src   *rafs.LocalBlobs
	files map[string][]byte
}

func buildImage(t *testing.T, fifo bool, opts ...builder.Option) *builtImage {
	t.Helper()
	bi := &builtImage{files: map[string][]byte{}}
	rng := rand.New(rand.NewPCG(3, 4))
	im := rafstest.Build(t, func(_ context.Context, w builder.FileWriter) (*tree.Tree, error) {
		root := tree.NewDir(0o755)
		add := func(dir *tree.Inode, p, name string, data []byte) *tree.Inode {
			chunks, err := w.WriteFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			ino := &tree.Inode{Mode: layout.ModeReg | 0o644, UID: 1234, GID: 5678, Mtime: 1600000000, MtimeNsec: 42, Size: uint64(len(data)), Chunks: chunks}
			dir.SetChild(name, ino)
			bi.files[p] = data
			return ino
		}
		for d := range 5 {
			dir := tree.NewDir(0o750)
			dir.Mtime = 1500000000
			root.SetChild(fmt.Sprintf("d%d", d), dir)
			for i := range 40 {
				n := rng.IntN(16_000) // small: fstest reads files a few bytes at a time
				if i%10 == 1 {
					n = 300_000 + rng.IntN(300_000)
				}
				if i%7 == 0 {
					n = 0
				}
				data := make([]byte, n)
				for k := range data {
					data[k] = byte(rng.IntN(8) + 'a')
				}
				name := fmt.Sprintf("f%03d", i)
				add(dir, fmt.Sprintf("d%d/%s", d, name), name, data)
			}
		}
		big := add(root, "big", "big", bytes.Repeat([]byte("nydus!"), 700_000))
		big.SetXattr("user.test", []byte("value"))
		big.SetXattr("security.capability", []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
		root.SetChild("hardlink", big)
		root.SetChild("link", &tree.Inode{Mode: layout.ModeSymlink | 0o777, Target: "d0/f001"})
		if fifo {
			root.SetChild("null", &tree.Inode{Mode: layout.ModeChr | 0o666, Rdev: unix.Mkdev(1, 3)}) // opening a FIFO blocks, so fstest cannot walk an image holding one
			root.SetChild("fifo", &tree.Inode{Mode: layout.ModeFifo | 0o600})
			root.SetChild("sock", &tree.Inode{Mode: layout.ModeSock | 0o600})
		}
		return &tree.Tree{Root: root}, nil
	}, opts...)
	bi.img, bi.src = im.Image, im.Blobs()
	return bi
}

func TestMountBuiltImages(t *testing.T) {
	testutil.RequireFUSE(t)
	for _, comp := range []layout.Compressor{layout.CompressNone, layout.CompressLZ4, layout.CompressZstd} {
		for _, dg := range []layout.Digester{layout.DigestBlake3, layout.DigestSHA256} {
			t.Run(comp.String()+"-"+dg.String(), func(t *testing.T) {
				bi := buildImage(t, false, builder.WithCompressor(comp), builder.WithDigester(dg), builder.WithChunkSize(0x10000))
				dir := mount(t, bi.img, bi.src)
				for p, want := range bi.files {
					got, err := os.ReadFile(filepath.Join(dir, p))
					if err != nil || !bytes.Equal(got, want) {
						t.Fatalf("%s: %d bytes, %v; want %d", p, len(got), err, len(want))
					}
				}
				var a, b unix.Stat_t
				testutil.Must(t, unix.Stat(filepath.Join(dir, "big"), &a))
				testutil.Must(t, unix.Stat(filepath.Join(dir, "hardlink"), &b))
				if a.Ino != b.Ino || a.Nlink != 2 || a.Uid != 1234 || a.Gid != 5678 {
					t.Fatalf("hardlink stat %+v vs %+v", a, b)
				}
				v := make([]byte, 64)
				n, err := unix.Getxattr(filepath.Join(dir, "big"), "user.test", v)
				if err != nil || string(v[:n]) != "value" {
					t.Fatalf("getxattr: %q %v", v[:n], err)
				}
				start0 := time.Now()
				defer func() { t.Logf("subtest %v", time.Since(start0)) }()
				// fstest reads every file byte by byte: walk the small-file part.
				if err := fstest.TestFS(os.DirFS(filepath.Join(dir, "d0")), "f002", "f039"); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				randomReads(t, dir, bi.files)
				t.Logf("random reads took %v", time.Since(start))
			})
		}
	}
}

// randomReads runs 64 goroutines of random preads and checks every byte.
func randomReads(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	var names []string
	for p, d := range files {
		if len(d) > 0 {
			names = append(names, p)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for range 50 {
				p := names[rng.IntN(len(names))]
				want := files[p]
				f, err := os.Open(filepath.Join(dir, p))
				if err != nil {
					errs <- err
					return
				}
				off := rng.IntN(len(want))
				buf := make([]byte, min(1+rng.IntN(200_000), len(want)-off))
				n, err := f.ReadAt(buf, int64(off))
				f.Close()
				if err != nil && !errors.Is(err, io.EOF) || !bytes.Equal(buf[:n], want[off:off+n]) || n != len(buf) {
					errs <- fmt.Errorf("%s at %d: %d bytes, %w", p, off, n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

type fileOut struct{ *os.File }

func (f fileOut) Truncate(n int64) error { return f.File.Truncate(n) }

// TestKernelDifferential mounts the same image with the kernel EROFS driver
// (via export) and with rafsfs and compares every stat field (times and
// directory sizes too), xattrs and bytes of every path.
func TestKernelDifferential(t *testing.T) {
	testutil.RequireFUSE(t)
	testutil.RequireKernelEROFS(t)
	bi := buildImage(t, true)
	imgPath := filepath.Join(t.TempDir(), "image.erofs")
	f, err := os.Create(imgPath)
	testutil.Must(t, err)
	if _, err := export.Block(context.Background(), bi.img, bi.src, fileOut{f}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	kdir := t.TempDir()
	if err := unix.Mount(imgPath, kdir, "erofs", unix.MS_RDONLY, ""); err != nil {
		// Older kernels need a loop device; mount(8) sets one up.
		testutil.Missing(t, "a kernel that mounts an EROFS image file directly (needs a loop device): %v", err)
	}
	defer unix.Unmount(kdir, 0)
	for name, mnt := range map[string]func(*testing.T, *rafs.Image, rafs.ChunkSource) string{"nid-root": mount, "node-tree": mountNodes, "pseudo": mountPseudo} {
		t.Run(name, func(t *testing.T) { compareWithKernel(t, kdir, mnt(t, bi.img, bi.src)) })
	}
}

// compareWithKernel compares every field statcmp records (times included)
// of every path of the kernel's mount kdir and rafsfs's fdir.
func compareWithKernel(t *testing.T, kdir, fdir string) {
	kernel, err := statcmp.Dir(kdir)
	testutil.Must(t, err)
	fuse, err := statcmp.Dir(fdir)
	testutil.Must(t, err)
	statcmp.Check(t, "kernel EROFS", kernel, "rafsfs", fuse, statcmp.Times(),
		statcmp.IgnoreField("blocks", "rafsfs st_blocks is ceil(size/512), EROFS counts 4 KiB blocks (issue 13 report)"))
	if kernel["d0"].Nlink != 2 || kernel["."].Nlink != 7 || kernel["big"].Nlink != 2 {
		t.Fatalf("kernel nlink: d0 %d, root %d, big %d; want 2, 7, 2", kernel["d0"].Nlink, kernel["."].Nlink, kernel["big"].Nlink)
	}
}
