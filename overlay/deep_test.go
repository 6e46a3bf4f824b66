package overlay_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/overlay"
)

// Paths deeper than PATH_MAX are legal: a program that cd's (or opens a
// directory) deep down works relative to it, and only a single path
// string longer than PATH_MAX is refused (ENAMETOOLONG) by the VFS. These
// tests build trees whose names, below a base directory, are PATH_MAX-1
// and PATH_MAX+1 bytes long, and run every path-taking operation relative
// to a descriptor of the deepest directory, on kernel overlayfs and on
// ours; the results must match.

// chain is a directory chain below base whose leaf names are leafLen
// bytes, so that base-relative paths of its leaves are total bytes long.
type chain struct {
	base    string
	comps   []string
	leafLen int
}

func newChain(base string, total int) chain {
	const compLen = 250
	k := (total - 1) / (compLen + 1)
	c := chain{base: base, leafLen: total - k*(compLen+1)}
	for i := range k {
		c.comps = append(c.comps, fmt.Sprintf("%03d", i)+strings.Repeat("d", compLen-3))
	}
	return c
}

// leaf is the leaf name starting with tag.
func (c chain) leaf(tag string) string { return tag + strings.Repeat("x", c.leafLen-len(tag)) }

// relPath is the base-relative path of leaf tag (for the length check).
func (c chain) relPath(tag string) string {
	return strings.Join(append(append([]string{}, c.comps...), c.leaf(tag)), "/")
}

// build makes the chain under dir (on any file system), relative at each
// step; it returns a descriptor of the deepest directory.
func (c chain) build(dir string) (int, error) {
	if err := os.MkdirAll(filepath.Join(dir, c.base), 0o755); err != nil {
		return -1, err
	}
	fd, err := unix.Open(filepath.Join(dir, c.base), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, comp := range c.comps {
		if err := unix.Mkdirat(fd, comp, 0o755); err != nil && err != unix.EEXIST {
			unix.Close(fd)
			return -1, err
		}
		next, err := unix.Openat(fd, comp, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// open returns a descriptor of the chain's deepest directory under m.
func (c chain) open(m string) (int, error) {
	fd, err := unix.Open(filepath.Join(m, c.base), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, comp := range c.comps {
		next, err := unix.Openat(fd, comp, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// statLine describes name in dirfd: type and mode, owner, size, links
// and, when asked, mtime.
func statLine(dirfd int, name string, mtime bool) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return "", err
	}
	s := fmt.Sprintf("mode=%o uid=%d gid=%d size=%d nlink=%d", st.Mode, st.Uid, st.Gid, st.Size, st.Nlink)
	if mtime {
		s += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
	}
	return s, nil
}

// deepSteps runs every path-taking operation at the end of c; lower says
// that the chain and its leaf "f" come from the lower tree (so every
// change first copies the chain up).
func deepSteps(c chain, lower bool) []step {
	at := func(name string, fn func(m string, fd int) (string, error)) step {
		return step{name: fmt.Sprintf("%s/%d %s", c.base, len(c.relPath("f")), name), fn: func(m string) (string, error) {
			fd, err := c.open(m)
			if err != nil {
				return "", err
			}
			defer unix.Close(fd)
			return fn(m, fd)
		}}
	}
	proc := func(fd int, name string) string { return "/proc/self/fd/" + strconv.Itoa(fd) + "/" + name }
	f, g, d, p, n, s, l, r := c.leaf("f"), c.leaf("g"), c.leaf("d"), c.leaf("p"), c.leaf("n"), c.leaf("s"), c.leaf("l"), c.leaf("r")
	var steps []step
	if !lower {
		steps = append(steps, step{name: c.base + " build", fn: func(m string) (string, error) {
			fd, err := c.build(m)
			if err != nil {
				return "", err
			}
			defer unix.Close(fd)
			return "", writeFileAt(fd, f, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644, "deep")
		}})
	}
	steps = append(steps,
		step{name: c.base + " whole path", fn: func(m string) (string, error) {
			var st unix.Stat_t
			return "", unix.Lstat(filepath.Join(m, c.base, c.relPath("f")), &st)
		}},
		at("stat", func(m string, fd int) (string, error) { return statLine(fd, f, false) }),
		at("read", func(m string, fd int) (string, error) { return readFileAt(fd, f) }),
		at("open for write", func(m string, fd int) (string, error) {
			if err := writeFileAt(fd, f, unix.O_WRONLY|unix.O_APPEND, 0, "+more"); err != nil {
				return "", err
			}
			return readFileAt(fd, f)
		}),
		at("chmod", func(m string, fd int) (string, error) {
			if err := unix.Fchmodat(fd, f, 0o600, 0); err != nil {
				return "", err
			}
			return statLine(fd, f, false)
		}),
		at("chown", func(m string, fd int) (string, error) {
			if err := unix.Fchownat(fd, f, 123, 456, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return "", err
			}
			return statLine(fd, f, false)
		}),
		at("truncate", func(m string, fd int) (string, error) {
			if err := unix.Truncate(proc(fd, f), 3); err != nil {
				return "", err
			}
			return statLine(fd, f, false)
		}),
		at("utimes", func(m string, fd int) (string, error) {
			ts := []unix.Timespec{{Sec: 1e9}, {Sec: 1e9 + 7}}
			if err := unix.UtimesNanoAt(fd, f, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return "", err
			}
			return statLine(fd, f, true)
		}),
		at("xattrs", func(m string, fd int) (string, error) {
			if err := unix.Lsetxattr(proc(fd, f), "user.deep", []byte("v"), 0); err != nil {
				return "", err
			}
			b := make([]byte, 16)
			k, err := unix.Lgetxattr(proc(fd, f), "user.deep", b)
			if err != nil {
				return "", err
			}
			list := make([]byte, 256)
			kl, err := unix.Llistxattr(proc(fd, f), list)
			if err != nil {
				return "", err
			}
			if err := unix.Lremovexattr(proc(fd, f), "user.deep"); err != nil {
				return "", err
			}
			return fmt.Sprintf("%s %q", b[:k], list[:kl]), nil
		}),
		at("create", func(m string, fd int) (string, error) {
			if err := writeFileAt(fd, g, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o640, "gee"); err != nil {
				return "", err
			}
			return statLine(fd, g, false)
		}),
		at("mkdir", func(m string, fd int) (string, error) {
			if err := unix.Mkdirat(fd, d, 0o750); err != nil {
				return "", err
			}
			return statLine(fd, d, false)
		}),
		at("mkfifo", func(m string, fd int) (string, error) {
			if err := unix.Mknodat(fd, p, unix.S_IFIFO|0o600, 0); err != nil {
				return "", err
			}
			return statLine(fd, p, false)
		}),
		at("mknod", func(m string, fd int) (string, error) {
			if err := unix.Mknodat(fd, n, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
				return "", err
			}
			return statLine(fd, n, false)
		}),
		at("symlink", func(m string, fd int) (string, error) {
			if err := unix.Symlinkat("target", fd, s); err != nil {
				return "", err
			}
			b := make([]byte, 64)
			k, err := unix.Readlinkat(fd, s, b)
			return string(b[:k]), err
		}),
		at("link", func(m string, fd int) (string, error) {
			if err := unix.Linkat(fd, g, fd, l, 0); err != nil {
				return "", err
			}
			return statLine(fd, l, false)
		}),
		at("rename", func(m string, fd int) (string, error) {
			if err := unix.Renameat(fd, l, fd, r); err != nil {
				return "", err
			}
			return statLine(fd, r, false)
		}),
		at("readdir", func(m string, fd int) (string, error) { return listAt(fd) }),
		at("unlink", func(m string, fd int) (string, error) {
			for _, name := range []string{r, g, p, n, s} {
				if err := unix.Unlinkat(fd, name, 0); err != nil {
					return name[:1], err
				}
			}
			return listAt(fd)
		}),
		at("rmdir", func(m string, fd int) (string, error) {
			if err := unix.Unlinkat(fd, d, unix.AT_REMOVEDIR); err != nil {
				return "", err
			}
			return listAt(fd)
		}),
		at("unlink leaf", func(m string, fd int) (string, error) {
			if err := unix.Unlinkat(fd, f, 0); err != nil {
				return "", err
			}
			return listAt(fd)
		}),
	)
	return steps
}

func writeFileAt(dirfd int, name string, flags int, mode uint32, data string) error {
	fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, mode)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(data))
	return err
}

func readFileAt(dirfd int, name string) (string, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	b := make([]byte, 256)
	k, err := unix.Read(fd, b)
	if err != nil {
		return "", err
	}
	return string(b[:k]), nil
}

// listAt lists the directory dirfd (an O_PATH descriptor): each name's
// first byte and length, sorted.
func listAt(dirfd int) (string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	f := os.NewFile(uintptr(fd), "dir")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return "", err
	}
	var out []string
	for _, n := range names {
		out = append(out, fmt.Sprintf("%c%d", n[0], len(n)))
	}
	sort.Strings(out)
	return strings.Join(out, ","), nil
}

// diffSteps runs steps on kernel overlayfs and on ours over copies of
// the same lower tree and compares every step's errno and result.
func diffSteps(t *testing.T, lower string, steps []step, opts ...overlay.Option) {
	t.Helper()
	kl := newLayers(t, lower)
	km := mountKernel(t, kl, "")
	k := runSteps(km, steps)
	ol := newLayers(t, lower)
	om := mountOurs(t, ol, opts...)
	o := runSteps(om, steps)
	for i := range k {
		if k[i] != o[i] {
			t.Errorf("step %d:\n  kernel: %s\n  ours:   %s", i, k[i], o[i])
		}
	}
	if t.Failed() || testing.Verbose() {
		for i := range k {
			t.Logf("%s", k[i])
		}
	}
}

// TestDeepPaths runs every path-taking operation at PATH_MAX-1 and
// PATH_MAX+1 bytes below a directory, in a tree made through the mount
// and in one that comes from the lower tree (copied up on change).
func TestDeepPaths(t *testing.T) { deepPaths(t) }

// TestDeepPathsOneHeldDir does the same holding one upper directory
// descriptor, so that nearly every operation opens its directory again
// from the upper root, one component at a time.
func TestDeepPathsOneHeldDir(t *testing.T) { deepPaths(t, overlay.WithHeldDirs(1)) }

func deepPaths(t *testing.T, opts ...overlay.Option) {
	requireMount(t)
	lower := filepath.Join(t.TempDir(), "lower")
	var steps []step
	for _, total := range []int{unix.PathMax - 1, unix.PathMax + 1} {
		lc := newChain(fmt.Sprintf("lowerdeep%d", total), total)
		fd, err := lc.build(lower)
		if err != nil {
			t.Fatal(err)
		}
		err = writeFileAt(fd, lc.leaf("f"), unix.O_CREAT|unix.O_WRONLY, 0o644, "lower")
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(lc.relPath("f")); got != total {
			t.Fatalf("chain path is %d bytes, want %d", got, total)
		}
		steps = append(steps, deepSteps(lc, true)...)
		steps = append(steps, deepSteps(newChain(fmt.Sprintf("upperdeep%d", total), total), false)...)
	}
	diffSteps(t, lower, steps, opts...)
}
