package overlay_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/overlay"
)

// pseudoRoot holds overlays as sub-directories, as a shared nydusd does.
type pseudoRoot struct {
	gofs.Inode
	children map[string]gofs.InodeEmbedder
}

func (r *pseudoRoot) OnAdd(ctx context.Context) {
	for name, c := range r.children {
		r.AddChild(name, r.NewPersistentInode(ctx, c, gofs.StableAttr{Mode: fuse.S_IFDIR}), false)
	}
}

// TestSubtreeMount serves the overlay as a directory below another root:
// upper paths are relative to the overlay, not to the mount.
func TestSubtreeMount(t *testing.T) {
	requireMount(t)
	lower := t.TempDir()
	if err := os.MkdirAll(filepath.Join(lower, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "d/f"), []byte("lower"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLayers(t, lower)
	dl, err := overlay.NewDirLower(lower)
	if err != nil {
		t.Fatal(err)
	}
	f, err := overlay.New(dl, l.upper, l.work)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mnt := t.TempDir()
	srv, err := gofs.Mount(mnt, &pseudoRoot{children: map[string]gofs.InodeEmbedder{"ovl": f.Root()}}, overlay.MountOptions("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Unmount()
	m := filepath.Join(mnt, "ovl")
	if err := os.WriteFile(filepath.Join(m, "d/f"), []byte("upper"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(m, "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(m, "d/f")); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(l.upper, "d/f"), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("upper d/f: %+v %v, want a whiteout", st, err)
	}
	if _, err := os.Stat(filepath.Join(l.upper, "new")); err != nil {
		t.Fatalf("upper new: %v", err)
	}
	if ents, err := os.ReadDir(m); err != nil || len(ents) != 2 {
		t.Fatalf("overlay root: %v %v", ents, err)
	}
}

// TestTwoOverlaysOneSession serves two overlays of the same lower tree in
// one FUSE session, told apart by their inode indexes.
func TestTwoOverlaysOneSession(t *testing.T) {
	requireMount(t)
	lower := t.TempDir()
	if err := os.MkdirAll(filepath.Join(lower, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "d/f"), []byte("lower"), 0o644); err != nil {
		t.Fatal(err)
	}
	dl, err := overlay.NewDirLower(lower)
	if err != nil {
		t.Fatal(err)
	}
	children := map[string]gofs.InodeEmbedder{}
	var uppers []string
	for i, name := range []string{"one", "two"} {
		l := newLayers(t, lower)
		f, err := overlay.New(dl, l.upper, l.work, overlay.WithInodeIndex(uint8(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close() //nolint:revive // each layer stays open until the test returns
		children[name] = f.Root()
		uppers = append(uppers, l.upper)
	}
	mnt := t.TempDir()
	srv, err := gofs.Mount(mnt, &pseudoRoot{children: children}, overlay.MountOptions("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Unmount()
	var inos []uint64
	for _, name := range []string{"one", "two"} {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(mnt, name, "d/f"), &st); err != nil {
			t.Fatal(err)
		}
		inos = append(inos, st.Ino)
	}
	if inos[0] == inos[1] {
		t.Fatalf("both overlays report inode %#x for d/f", inos[0])
	}
	if err := os.WriteFile(filepath.Join(mnt, "two", "d/f"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"lower", "two"} {
		name := []string{"one", "two"}[i]
		b, err := os.ReadFile(filepath.Join(mnt, name, "d/f"))
		if err != nil || string(b) != want {
			t.Errorf("%s/d/f: %q %v, want %q", name, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(uppers[0], "d/f")); err == nil {
		t.Errorf("the write to two/d/f reached one's upper dir")
	}
}
