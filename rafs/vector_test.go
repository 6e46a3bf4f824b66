package rafs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/gonydus/nydus/internal/testutil"
	"github.com/gonydus/nydus/rafs"
	"github.com/gonydus/nydus/rafs/digest"
	"github.com/gonydus/nydus/rafs/layout"
)

var upstreamDir = testutil.TestdataPath("upstream-nydus")

const upstreamBlob = "be7d77eeb719f70884758d1aa800ed0fb09d701aaec469964e9d54325f0d5fef"

func openVector(t testing.TB) (*rafs.Image, *rafs.LocalBlobs) {
	boot := testutil.ReadTestdata(t, "upstream-nydus", "bootstrap/rafs-v6-2.2.boot")
	img, err := rafs.Open(bytes.NewReader(boot), int64(len(boot)))
	if err != nil {
		t.Fatal(err)
	}
	src := rafs.NewLocalBlobs(filepath.Join(upstreamDir, "blobs"), nil)
	t.Cleanup(func() { src.Close() })
	return img, src
}

// TestUpstreamVector reads the upstream RAFS v6 fixture end to end: tree,
// attributes, chunk lists and file contents with digests verified.
func TestUpstreamVector(t *testing.T) {
	img, src := openVector(t)
	if img.Root() != 128 || img.Inodes() != 3 || img.ChunkSize() != 1<<20 {
		t.Fatalf("root %d inodes %d chunk size %d", img.Root(), img.Inodes(), img.ChunkSize())
	}
	if img.Flags().Compressor() != layout.CompressZstd || img.Flags().Digester() != layout.DigestBlake3 || !img.ExplicitUIDGID() {
		t.Fatalf("flags %#x", img.Flags())
	}
	if len(img.Blobs()) != 1 || img.Blobs()[0].ID() != upstreamBlob {
		t.Fatalf("blobs %v", img.Blobs())
	}
	root, err := img.Inode(img.Root())
	if err != nil {
		t.Fatal(err)
	}
	if !root.IsDir() || root.Nlink != 2 {
		t.Fatalf("root = %+v", root)
	}
	ents, err := img.ReadDir(img.Root())
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2 || ents[0].Name != "lib.rs" || ents[1].Name != "sync_io.rs" {
		t.Fatalf("root entries %+v", ents)
	}
	sizes := map[string]uint64{"lib.rs": 16931, "sync_io.rs": 13400}
	for name, size := range sizes {
		nid, err := img.Lookup(img.Root(), name)
		if err != nil {
			t.Fatal(err)
		}
		ino, err := img.Inode(nid)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: nid %d mode %#o uid %d gid %d mtime %d.%09d nlink %d", name, nid, ino.Mode, ino.UID, ino.GID, ino.Mtime, ino.MtimeNsec, ino.Nlink)
		if !ino.IsReg() || ino.Size != size || ino.Nlink != 1 || ino.Mode&0o777 == 0 {
			t.Fatalf("%s inode %+v", name, ino)
		}
		chunks, err := img.Chunks(nid)
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) != 1 || uint64(chunks[0].Info.UncompressedSize) != size {
			t.Fatalf("%s chunks %+v", name, chunks)
		}
		data := make([]byte, size)
		if n, err := img.ReadFile(context.Background(), src, nid, data, 0); err != nil || uint64(n) != size {
			t.Fatalf("%s: read %d: %v", name, n, err)
		}
		if got := digest.Sum(layout.DigestBlake3, data); got != chunks[0].Info.Digest {
			t.Fatalf("%s: blake3 mismatch", name)
		}
		if !bytes.Contains(data, []byte("fn ")) || !bytes.Contains(data, []byte("use ")) {
			t.Fatalf("%s does not look like Rust source: %q", name, data[:80])
		}
	}
	if _, err := img.Lookup(img.Root(), "missing"); !errors.Is(err, rafs.ErrNotExist) {
		t.Fatalf("lookup missing: %v", err)
	}
}

func TestUpstreamVectorFS(t *testing.T) {
	img, src := openVector(t)
	fsys := img.FS(context.Background(), src)
	if err := fstest.TestFS(fsys, "lib.rs", "sync_io.rs"); err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(fsys, "sync_io.rs")
	if err != nil || len(b) != 13400 {
		t.Fatalf("read sync_io.rs: %d bytes, %v", len(b), err)
	}
}

// TestCorruptBlobIsDetected flips a byte of chunk data: the read must fail
// with a digest or decompression error, never return bytes.
func TestCorruptBlobIsDetected(t *testing.T) {
	img, _ := openVector(t)
	blob := testutil.ReadTestdata(t, "upstream-nydus", "blobs/"+upstreamBlob)
	for _, off := range []int{100, 4828 + 200} {
		bad := bytes.Clone(blob)
		bad[off] ^= 0x40
		src := rafs.NewLocalBlobs("", map[string]io.ReaderAt{upstreamBlob: bytes.NewReader(bad)})
		for _, name := range []string{"lib.rs", "sync_io.rs"} {
			nid, _ := img.LookupPath(name)
			buf := make([]byte, 20000)
			n, err := img.ReadFile(context.Background(), src, nid, buf, 0)
			covered := (name == "lib.rs") == (off < 4828)
			if covered && (err == nil || errors.Is(err, io.EOF) || n != 0) {
				t.Fatalf("corrupt byte %d: %s read %d bytes, err %v", off, name, n, err)
			}
			if !covered && !errors.Is(err, io.EOF) {
				t.Fatalf("corrupt byte %d: %s (untouched) read failed: %v", off, name, err)
			}
		}
	}
}

func TestRafsV5IsRejected(t *testing.T) {
	b := make([]byte, 8192)
	copy(b, []byte{0x53, 0x46, 0x41, 0x52, 0x00, 0x05, 0x00, 0x00})
	_, err := rafs.Open(bytes.NewReader(b), int64(len(b)))
	if !errors.Is(err, rafs.ErrV5) || !strings.Contains(err.Error(), "RAFS v5 is not supported") {
		t.Fatalf("v5: %v", err)
	}
}

// TestTruncatedBootstraps opens every block-granular truncation and some
// odd lengths: all must fail cleanly.
func TestTruncatedBootstraps(t *testing.T) {
	boot := testutil.ReadTestdata(t, "upstream-nydus", "bootstrap/rafs-v6-2.2.boot")
	lengths := []int{0, 1, 7, 8, 1023, 1024, 1100, 1152, 1500, 4095, len(boot) - 1, len(boot) - 80}
	for n := 4096; n < len(boot); n += 4096 {
		lengths = append(lengths, n)
	}
	for _, n := range lengths {
		_, err := rafs.Open(bytes.NewReader(boot[:n]), int64(n))
		if err == nil {
			t.Fatalf("truncated to %d bytes: opened", n)
		}
		if !errors.Is(err, layout.ErrFormat) {
			t.Fatalf("truncated to %d bytes: %v is not a format error", n, err)
		}
	}
}

// TestCorruptStructures damages each structure of the fixture and checks
// Open or a full walk reports an error instead of panicking.
func TestCorruptStructures(t *testing.T) {
	boot := testutil.ReadTestdata(t, "upstream-nydus", "bootstrap/rafs-v6-2.2.boot")
	cases := map[string]struct {
		off int
		val []byte
	}{
		"erofs magic":         {1024, []byte{0}},
		"feature incompat":    {1024 + 80, []byte{0xff}},
		"meta blkaddr":        {1024 + 40, []byte{0xff, 0xff}},
		"root nid":            {1024 + 14, []byte{0xff, 0xff}},
		"ext flags":           {1152, []byte{0xff, 0xff}},
		"chunk size":          {1152 + 20, []byte{0x01, 0x10, 0, 0}},
		"blob table offset":   {1152 + 8, []byte{0, 0, 0, 0x10}},
		"chunk table offset":  {1152 + 24, []byte{0x10, 0, 0, 0, 0, 0, 0, 1}},
		"device tag":          {1408, []byte("zz")},
		"device count":        {1024 + 86, []byte{5}},
		"blob index":          {4096 + 64, []byte{3}},
		"root format":         {8192 + 128*32, []byte{0xf0}},
		"root size":           {8192 + 128*32 + 8, []byte{0xff, 0xff, 0xff}},
		"lib.rs chunk device": {8192 + 133*32 + 64 + 2, []byte{0}},
		"lib.rs chunk index":  {8192 + 133*32 + 64, []byte{9}},
		"lib.rs size":         {8192 + 133*32 + 8, []byte{0xff, 0xff, 0xff}},
		"dirent nameoff":      {8192 + 128*32 + 64 + 8, []byte{0xff}},
		"dirent nid":          {8192 + 128*32 + 64 + 24, []byte{0xff, 0xff, 0xff}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b := bytes.Clone(boot)
			copy(b[c.off:], c.val)
			if err := openAndWalk(b); err == nil {
				t.Fatalf("corrupt %s: no error", name)
			} else {
				t.Logf("%s: %v", name, err)
			}
		})
	}
}

// openAndWalk opens b and touches every structure of every inode.
func openAndWalk(b []byte) error {
	img, err := rafs.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	seen := map[uint64]bool{}
	return img.Walk(func(p string, ino *rafs.Inode) error {
		if seen[ino.Nid] {
			return nil
		}
		seen[ino.Nid] = true
		if _, err := img.Xattrs(ino.Nid); err != nil {
			return err
		}
		switch {
		case ino.IsReg():
			_, err = img.Chunks(ino.Nid)
		case ino.IsSymlink():
			_, err = img.Readlink(ino.Nid)
		case ino.IsDir():
			for _, name := range []string{"a", "lib.rs", "zzz"} {
				if _, lerr := img.Lookup(ino.Nid, name); lerr != nil && !errors.Is(lerr, rafs.ErrNotExist) {
					return lerr
				}
			}
		}
		return err
	})
}

func FuzzOpen(f *testing.F) {
	boot := testutil.ReadTestdata(f, "upstream-nydus", "bootstrap/rafs-v6-2.2.boot")
	f.Add(boot)
	f.Add(boot[:4096])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		_ = openAndWalk(b)
	})
}
