package rafsfs

import (
	"sync/atomic"
)

// FUSE opcodes, as numbered by the kernel protocol (include/uapi/linux/fuse.h).
const (
	opLookup      = 1
	opForget      = 2
	opGetattr     = 3
	opSetattr     = 4
	opReadlink    = 5
	opSymlink     = 6
	opMknod       = 8
	opMkdir       = 9
	opUnlink      = 10
	opRmdir       = 11
	opRename      = 12
	opLink        = 13
	opOpen        = 14
	opRead        = 15
	opWrite       = 16
	opStatfs      = 17
	opRelease     = 18
	opFsync       = 20
	opSetxattr    = 21
	opGetxattr    = 22
	opListxattr   = 23
	opRemovexattr = 24
	opFlush       = 25
	opOpendir     = 27
	opReaddir     = 28
	opReleasedir  = 29
	opFsyncdir    = 30
	opGetlk       = 31
	opSetlk       = 32
	opSetlkw      = 33
	opAccess      = 34
	opCreate      = 35
	opIoctl       = 39
	opFallocate   = 43
	opReaddirplus = 44
	opRename2     = 45
	opLseek       = 46
	opCopyRange   = 47
	opStatx       = 52
	opTmpfile     = 51
	maxOpcode     = 64
)

var opNames = [maxOpcode]string{
	opLookup: "lookup", opForget: "forget", opGetattr: "getattr", opSetattr: "setattr",
	opReadlink: "readlink", opSymlink: "symlink", opMknod: "mknod", opMkdir: "mkdir",
	opUnlink: "unlink", opRmdir: "rmdir", opRename: "rename", opLink: "link",
	opOpen: "open", opRead: "read", opWrite: "write", opStatfs: "statfs",
	opRelease: "release", opFsync: "fsync", opSetxattr: "setxattr", opGetxattr: "getxattr",
	opListxattr: "listxattr", opRemovexattr: "removexattr", opFlush: "flush",
	opOpendir: "opendir", opReaddir: "readdir", opReleasedir: "releasedir",
	opFsyncdir: "fsyncdir", opGetlk: "getlk", opSetlk: "setlk", opSetlkw: "setlkw",
	opAccess: "access", opCreate: "create", opIoctl: "ioctl", opFallocate: "fallocate",
	opReaddirplus: "readdirplus", opRename2: "rename2", opLseek: "lseek",
	opCopyRange: "copy_file_range", opTmpfile: "tmpfile", opStatx: "statx",
}

// Requests counts the FUSE requests a filesystem answered, by opcode.
// FORGET counts forgotten inodes: a BATCH_FORGET of n inodes adds n.
type Requests struct {
	n [maxOpcode]atomic.Uint64
}

func (r *Requests) add(op int) { r.n[op].Add(1) }

// Counts returns the non-zero counters by lower-case opcode name
// ("lookup", "readdirplus", ...).
func (r *Requests) Counts() map[string]uint64 {
	out := map[string]uint64{}
	for op := range r.n {
		if v := r.n[op].Load(); v != 0 {
			out[opNames[op]] = v
		}
	}
	return out
}

// Total returns the number of requests answered, FORGETs excluded (they
// are counted per inode and need no answer).
func (r *Requests) Total() uint64 {
	var t uint64
	for op := range r.n {
		if op != opForget {
			t += r.n[op].Load()
		}
	}
	return t
}
