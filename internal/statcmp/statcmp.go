// Package statcmp is test support for oracle comparisons: it describes a
// tree (a mounted image, a source directory, an extracted or streamed tar)
// by every stat field the kernel reports for each path, and compares two
// descriptions field by field. Tests of rafs, daemon and cmd use it so that
// every oracle check covers the same fields: type, permission bits
// (setuid, setgid and sticky included), owner, size, link count
// (directories included), device number, mtime to the nanosecond, symlink
// target, xattrs, hardlink groups and content.
package statcmp

import (
	"fmt"
	"sort"
	"strings"
)

// Entry is what an oracle comparison checks about one path.
type Entry struct {
	Type     uint32 // S_IFMT bits
	Perm     uint32 // mode & 07777: setuid, setgid and sticky included
	UID, GID uint32
	Size     int64
	Nlink    uint64
	Rdev     uint64
	Mtime    int64  // nanoseconds since the epoch
	Target   string // symlink target
	Xattrs   string // name=hexvalue; sorted by name
	Hash     string // sha256 of a regular file's content
	// LinkGroup is the smallest path sharing this entry's inode (every
	// non-directory has one, itself when it has no other name).
	LinkGroup string
	// Atime, Ctime and Blocks are what two mounts of the same image must
	// also agree on; a source tree's own values are its own (see Times).
	Atime, Ctime int64
	Blocks       int64
}

// Snapshot maps slash-separated paths relative to the tree's root ("." is
// the root) to their entries.
type Snapshot map[string]Entry

// field is one comparable field of an Entry.
type field struct {
	name string
	get  func(Entry) any
}

var coreFields = []field{
	{"type", func(e Entry) any { return fmt.Sprintf("%#o", e.Type) }},
	{"perm", func(e Entry) any { return fmt.Sprintf("%#o", e.Perm) }},
	{"uid", func(e Entry) any { return e.UID }},
	{"gid", func(e Entry) any { return e.GID }},
	{"size", func(e Entry) any { return e.Size }},
	{"nlink", func(e Entry) any { return e.Nlink }},
	{"rdev", func(e Entry) any { return fmt.Sprintf("%#x", e.Rdev) }},
	{"mtime", func(e Entry) any { return e.Mtime }},
	{"target", func(e Entry) any { return e.Target }},
	{"xattrs", func(e Entry) any { return e.Xattrs }},
	{"content", func(e Entry) any { return e.Hash }},
	{"linkgroup", func(e Entry) any { return e.LinkGroup }},
}

var timeFields = []field{
	{"atime", func(e Entry) any { return e.Atime }},
	{"ctime", func(e Entry) any { return e.Ctime }},
	{"blocks", func(e Entry) any { return e.Blocks }},
}

// Option adjusts a comparison.
type Option func(*cmpConfig)

type cmpConfig struct {
	times   bool
	dirSize bool
	skip    map[string]map[string]string // path -> field -> reason
}

// Times also compares atime, ctime and st_blocks: for two mounts of one
// image, which must agree on them too.
func Times() Option { return func(c *cmpConfig) { c.times = true } }

// IgnoreDirSize leaves out the size of directories: a directory's size is
// its file system's own encoding of its entries (ext4 blocks, tmpfs entry
// counts, EROFS dirent blocks), so it is compared only between two mounts
// of the same image, never against a source tree or a tar.
func IgnoreDirSize() Option { return func(c *cmpConfig) { c.dirSize = false } }

// Ignore leaves out one field of one path; reason says why and shows in
// the log of every comparison that uses it.
func Ignore(path, fieldName, reason string) Option {
	return func(c *cmpConfig) {
		if c.skip[path] == nil {
			c.skip[path] = map[string]string{}
		}
		c.skip[path][fieldName] = reason
	}
}

// IgnoreField leaves out one field of every path; reason says why and
// shows in the log of every comparison that uses it.
func IgnoreField(fieldName, reason string) Option { return Ignore("*", fieldName, reason) }

// Diff returns one line per difference between want and got: missing and
// unexpected paths, and every differing field of common paths.
func Diff(want, got Snapshot, opts ...Option) []string {
	c := &cmpConfig{dirSize: true, skip: map[string]map[string]string{}}
	for _, o := range opts {
		o(c)
	}
	fields := coreFields
	if c.times {
		fields = append(append([]field(nil), coreFields...), timeFields...)
	}
	var out []string
	for _, p := range sortedPaths(want) {
		w := want[p]
		g, ok := got[p]
		if !ok {
			out = append(out, fmt.Sprintf("%s: missing", p))
			continue
		}
		var diffs []string
		for _, f := range fields {
			if _, skip := c.skip[p][f.name]; skip {
				continue
			}
			if _, skip := c.skip["*"][f.name]; skip {
				continue
			}
			if f.name == "size" && !c.dirSize && w.Type == sIFDIR && g.Type == sIFDIR {
				continue
			}
			if wv, gv := f.get(w), f.get(g); wv != gv {
				diffs = append(diffs, fmt.Sprintf("%s %v, want %v", f.name, short(gv), short(wv)))
			}
		}
		if len(diffs) > 0 {
			out = append(out, fmt.Sprintf("%s: %s", p, strings.Join(diffs, "; ")))
		}
	}
	for _, p := range sortedPaths(got) {
		if _, ok := want[p]; !ok {
			out = append(out, fmt.Sprintf("%s: unexpected", p))
		}
	}
	return out
}

// Skipped lists the per-path exemptions an option set makes, for logs.
func Skipped(opts ...Option) []string {
	c := &cmpConfig{dirSize: true, skip: map[string]map[string]string{}}
	for _, o := range opts {
		o(c)
	}
	var out []string
	for p, fs := range c.skip {
		for f, why := range fs {
			out = append(out, fmt.Sprintf("%s %s: %s", p, f, why))
		}
	}
	sort.Strings(out)
	return out
}

func short(v any) any {
	if s, ok := v.(string); ok && len(s) > 80 {
		return s[:77] + "..."
	}
	return v
}

func sortedPaths(s Snapshot) []string {
	ps := make([]string, 0, len(s))
	for p := range s {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// TB is the part of testing.TB Check uses.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
}

// Check fails t with every difference between want (described by
// wantName) and got (gotName); it logs how many paths agreed otherwise.
func Check(t TB, wantName string, want Snapshot, gotName string, got Snapshot, opts ...Option) bool {
	t.Helper()
	diffs := Diff(want, got, opts...)
	for _, s := range Skipped(opts...) {
		t.Logf("%s vs %s: not compared: %s", gotName, wantName, s)
	}
	if len(diffs) == 0 {
		t.Logf("%s vs %s: %d paths agree on every field", gotName, wantName, len(want))
		return true
	}
	const maxShown = 40
	for i, d := range diffs {
		if i == maxShown {
			t.Errorf("%s vs %s: ... and %d more differences", gotName, wantName, len(diffs)-maxShown)
			break
		}
		t.Errorf("%s vs %s: %s", gotName, wantName, d)
	}
	return false
}
