package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is a writable overlay of one read-only lower tree and an upper
// directory.
type FS struct {
	lower   Lower
	dirs    *dirs
	workDir string // <work_dir>/work, as the kernel uses it
	upperFd int
	workFd  int
	xattrNS string // "trusted.overlay." or "user.overlay."
	log     *slog.Logger
	root    *node
	held    heldDirs // upper directory descriptors of the nodes

	// mu serialises changes of the upper tree (copy-up, create, remove,
	// rename), so each works on a stable view.
	mu        sync.Mutex
	tmpSeq    atomic.Uint64
	idMu      sync.Mutex
	copied    map[upperID]fs.StableAttr // upper inode -> st_ino it had in the lower tree
	copiedIno map[uint64]fs.StableAttr  // the same, by upper inode number alone (for readdir)
	linkGens  map[string]uint64         // path of a hard-linked lower file -> its node's generation
	nextGen   uint64
	births    map[uint64]uint64 // upper inode -> generation, where the upper has no birth times (ident.go)
	inoBase   uint64            // the overlay's index, in place
}

type upperID struct{ ino, gen uint64 }

// attrTimeout is how long the kernel may cache entries and attributes.
const attrTimeout = time.Second

// Inode number layout: bits 63-56 are the overlay's index (WithInodeIndex),
// bit 55 marks a lower object, and the low 54 bits are the upper or lower
// inode number.
const (
	inoIndexShift = 56
	lowerInoTag   = 1 << 55
	inoMask       = 1<<54 - 1
)

// New returns an overlay of lower under upperDir, using workDir (on the
// same file system as upperDir) for atomic copy-up and whiteouts.
func New(lower Lower, upperDir, workDir string, opts ...Option) (*FS, error) {
	c := config{logger: slog.Default(), heldDirs: defaultHeldDirs}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if lower == nil {
		return nil, errors.New("overlay: a lower tree is required")
	}
	d, err := openDirs(upperDir, workDir, c.handover)
	if err != nil {
		return nil, err
	}
	f := &FS{lower: lower, dirs: d, workDir: d.scratch, upperFd: d.upperFd, workFd: d.workFd, log: c.logger,
		xattrNS: "trusted.overlay.", copied: map[upperID]fs.StableAttr{}, copiedIno: map[uint64]fs.StableAttr{}, linkGens: map[string]uint64{},
		births:  map[uint64]uint64{},
		inoBase: uint64(c.inoIndex) << inoIndexShift}
	if c.userXattr {
		f.xattrNS = "user.overlay."
	}
	f.held.max = c.heldDirs
	// Work dir names of a predecessor (a handover) may still be there.
	f.tmpSeq.Store(uint64(time.Now().UnixNano()))
	f.root = &node{fs: f, lower: lower}
	return f, nil
}

// Lock takes the upper and work directories of an overlay opened
// WithHandover, waiting up to timeout for the daemon handing over to let
// them go; without WithHandover they are locked already.
func (f *FS) Lock(timeout time.Duration) error { return f.dirs.lock(timeout) }

// Close releases the upper and work directories (and their locks); call
// it after the file system is unmounted.
func (f *FS) Close() error {
	f.held.closeAll()
	return f.dirs.close()
}

// Root returns the root node: the root of a mount (fs.Mount), or a
// directory anywhere in another go-fuse tree (paths in the upper dir are
// relative to it).
func (f *FS) Root() fs.InodeEmbedder { return f.root }

// RootStableAttr is a stable attribute for the root node when it is the
// root of a mount.
func (f *FS) RootStableAttr() *fs.StableAttr {
	return &fs.StableAttr{Mode: fuse.S_IFDIR, Ino: fuse.FUSE_ROOT_ID}
}

// MountOptions returns go-fuse options for serving the overlay: one-second
// entry and attribute caching (every change goes through this server),
// 1 MiB writes, permission bits reported as they are (0000 included),
// device files and set-uid honoured, as on a kernel overlay
// mount; set-ID bits are dropped by the server (FUSE_HANDLE_KILLPRIV_V2,
// see killpriv.go), which spares two requests per written file. Where the kernel offers FUSE passthrough (Linux 6.9+, needs
// CAP_SYS_ADMIN), reads, writes and mmap of upper files bypass this
// process; add fuse.CAP_PASSTHROUGH to DisabledCapabilities to turn it off.
func MountOptions(name string) *fs.Options {
	sec := attrTimeout
	return &fs.Options{
		// A mode of 0000 is a mode (open(2) with mode 0 makes one), not
		// a missing one for go-fuse to replace with 0644.
		NullPermissions: true,
		EntryTimeout:    &sec,
		AttrTimeout:     &sec,
		NegativeTimeout: &sec,
		MountOptions: fuse.MountOptions{
			FsName:       name,
			Name:         "nydus-overlay",
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			// The server drops set-ID bits (killpriv.go): fewer
			// GETXATTR and GETATTR requests per written file.
			ExtraCapabilities: fuse.CAP_HANDLE_KILLPRIV_V2,
			Options:           []string{"default_permissions"},
			AllowOther:        true,
			DirectMount:       true,
			DirectMountFlags:  syscall.MS_MGC_VAL,
		},
	}
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// tmpName returns a fresh name in the work directory.
func (f *FS) tmpName() string { return fmt.Sprintf("#%x", f.tmpSeq.Add(1)) }

func (f *FS) logErr(ctx context.Context, op string, err error) {
	f.log.ErrorContext(ctx, "overlay: "+op, "err", err)
}
