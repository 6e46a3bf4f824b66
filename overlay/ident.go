package overlay

import (
	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// Inode numbers (laid out as fs.go says): an upper object reports its
// upper inode number, with the birth time as generation (so a reused upper
// inode is a new node); a lower object reports its lower inode number
// tagged with lowerInoTag; an object copied up while mounted keeps the
// number it had.
//
// Names of a lower file with several links report its one lower number
// and link count, as on the kernel, so tar finds the hard link; each name
// is still its own node (a generation per path tells them apart), because
// copying one of them up breaks the link (as on the kernel without
// index=on): the copied name then reports its new upper number, and the
// other names keep the lower one.

// genOf is the generation of the upper object st: its birth time, or,
// where the upper file system reports none (FUSE file systems), the
// number born gave the object when the overlay made it (0 for an object
// that was there before the mount). Either way a reused upper inode
// number is a new node, not the object that had the number before.
func (f *FS) genOf(st *unix.Statx_t) uint64 {
	if st.Mask&unix.STATX_BTIME != 0 {
		return uint64(st.Btime.Sec)<<30 ^ uint64(st.Btime.Nsec)
	}
	f.idMu.Lock()
	defer f.idMu.Unlock()
	return f.births[st.Ino]
}

// born gives an upper object the overlay has just made, st, its
// generation when the upper file system keeps no birth times (see genOf).
func (f *FS) born(st *unix.Statx_t) {
	if st.Mask&unix.STATX_BTIME != 0 {
		return
	}
	f.idMu.Lock()
	f.nextGen++
	f.births[st.Ino] = f.nextGen
	f.idMu.Unlock()
}

func (f *FS) upperIdent(st *unix.Statx_t) gofs.StableAttr {
	id := upperID{ino: st.Ino, gen: f.genOf(st)}
	f.idMu.Lock()
	orig, ok := f.copied[id]
	f.idMu.Unlock()
	if ok {
		return orig
	}
	return gofs.StableAttr{Mode: uint32(st.Mode) & unix.S_IFMT, Ino: f.upperIno(st.Ino), Gen: id.gen}
}

func (f *FS) lowerIdent(p string, st Stat) gofs.StableAttr {
	id := gofs.StableAttr{Mode: st.Mode & unix.S_IFMT, Ino: f.lowerDirentIno(st.Ino)}
	if linkedLower(st) {
		id.Gen = f.linkGen(p)
	}
	return id
}

// linkedLower reports a lower non-directory with more than one name: the
// kernel shows its lower number only until it is copied up.
func linkedLower(st Stat) bool {
	return st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR
}

// linkGen is the generation of the name p of a hard-linked lower file:
// one per path, so the names are distinct nodes with one inode number.
func (f *FS) linkGen(p string) uint64 {
	f.idMu.Lock()
	defer f.idMu.Unlock()
	g, ok := f.linkGens[p]
	if !ok {
		f.nextGen++
		g = f.nextGen
		f.linkGens[p] = g
	}
	return g
}

func (f *FS) upperIno(ino uint64) uint64 { return f.inoBase | ino&inoMask }

// lowerDirentIno is the number of the lower object with inode number ino.
func (f *FS) lowerDirentIno(ino uint64) uint64 { return f.inoBase | lowerInoTag | ino&inoMask }

// direntIno is the d_ino readdir reports for an upper entry.
func (f *FS) direntIno(ino uint64) uint64 {
	f.idMu.Lock()
	defer f.idMu.Unlock()
	if v, ok := f.copiedIno[ino]; ok {
		return v.Ino
	}
	return f.upperIno(ino)
}

// recordCopyUp keeps the identity id for the upper object st.
func (f *FS) recordCopyUp(st *unix.Statx_t, id gofs.StableAttr) {
	gen := f.genOf(st)
	f.idMu.Lock()
	f.copied[upperID{ino: st.Ino, gen: gen}] = id
	f.copiedIno[st.Ino] = id
	f.idMu.Unlock()
}

// linkedNode reports a node made for a name of a hard-linked lower file.
func linkedNode(n *node) bool {
	a := n.StableAttr()
	return a.Ino&lowerInoTag != 0 && a.Gen != 0
}

// markCopiedUp records that n's lower object is in the upper tree now. A
// name of a hard-linked lower file then has a new number, which its node
// cannot report (go-fuse fixes a node's number): the kernel's cached
// attributes of the node are dropped, and a GETATTR of it without an open
// file fails with ESTALE, on which the kernel looks the name up again and
// finds the node of its upper object.
func (n *node) markCopiedUp() {
	n.copiedUp.Store(true)
	if linkedNode(n) {
		n.NotifyContent(-1, 0) // attributes only; no lock of the kernel's taken
	}
}

// staleLinked reports a node whose name moved to another node (see
// markCopiedUp).
func (n *node) staleLinked() bool { return n.copiedUp.Load() && linkedNode(n) }
