package overlay

import (
	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"
)

// Inode numbers (laid out as fs.go says): an upper object reports its
// upper inode number, with the birth time as generation (so a reused upper
// inode is a new node); a lower object reports its lower inode number
// tagged with lowerInoTag; an object copied up while mounted keeps the
// number it had. Lower files with several links get one number per path,
// because copying one of them up breaks the link (as on the kernel without
// index=on).

func genOf(st *unix.Statx_t) uint64 {
	return uint64(st.Btime.Sec)<<30 ^ uint64(st.Btime.Nsec)
}

func (f *FS) upperIdent(st *unix.Statx_t) gofs.StableAttr {
	id := upperID{ino: st.Ino, gen: genOf(st)}
	f.idMu.Lock()
	orig, ok := f.copied[id]
	f.idMu.Unlock()
	if ok {
		return orig
	}
	return gofs.StableAttr{Mode: uint32(st.Mode) & unix.S_IFMT, Ino: f.upperIno(st.Ino), Gen: id.gen}
}

func (f *FS) lowerIdent(p string, st Stat) gofs.StableAttr {
	return gofs.StableAttr{Mode: st.Mode & unix.S_IFMT, Ino: f.lowerIno(p, st)}
}

func (f *FS) lowerIno(p string, st Stat) uint64 {
	if st.Nlink <= 1 || st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return f.lowerDirentIno(st.Ino)
	}
	f.idMu.Lock()
	defer f.idMu.Unlock()
	ino, ok := f.linkIno[p]
	if !ok {
		f.nextIno++
		ino = f.inoBase | lowerInoTag | linkInoTag | f.nextIno&inoMask
		f.linkIno[p] = ino
	}
	return ino
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
	f.idMu.Lock()
	f.copied[upperID{ino: st.Ino, gen: genOf(st)}] = id
	f.copiedIno[st.Ino] = id
	f.idMu.Unlock()
}
