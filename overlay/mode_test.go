package overlay_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestCreateModes makes objects with every create-like call (open with
// O_CREAT, O_TMPFILE then linkat, mkdir, mkfifo, mknod, symlink, link),
// with modes 0000 and 07777, under umasks 0, 022 and 077, in a directory
// of the upper tree and in one from the lower tree, and reports each
// object's mode as lstat sees it at once (the attributes of the create's
// reply) and through its descriptor; then chmods and copies up lower
// objects with such modes. Kernel overlayfs and ours must agree.
func TestCreateModes(t *testing.T) {
	requireMount(t)
	lower := filepath.Join(t.TempDir(), "lower")
	if err := os.MkdirAll(filepath.Join(lower, "ldir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]uint32{"m0000": 0, "m7777": 0o7777, "m4755": 0o4755} {
		p := filepath.Join(lower, name)
		if err := os.WriteFile(p, []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkdir(filepath.Join(lower, "d0000"), 0); err != nil {
		t.Fatal(err)
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	diffSteps(t, lower, modeSteps())
}

func modeSteps() []step {
	var steps []step
	lstat := func(p string) (string, error) {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return "", err
		}
		return fmt.Sprintf("%o", st.Mode), nil
	}
	fstat := func(fd int) string {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return err.Error()
		}
		return fmt.Sprintf("%o", st.Mode)
	}
	add := func(name string, umask int, fn func(m string) (string, error)) {
		steps = append(steps, step{name: fmt.Sprintf("umask %03o %s", umask, name), fn: func(m string) (string, error) {
			old := unix.Umask(umask)
			defer unix.Umask(old)
			return fn(m)
		}})
	}
	for _, dir := range []string{"", "ldir"} {
		if dir == "" {
			steps = append(steps, step{name: "mkdir udir", fn: func(m string) (string, error) { return "", unix.Mkdir(j(m, "udir"), 0o755) }})
			dir = "udir"
		}
		for _, umask := range []int{0, 0o022, 0o077} {
			for _, mode := range []uint32{0, 0o7777} {
				tag := fmt.Sprintf("%s/%03o-%04o", dir, umask, mode)
				add(tag+" open O_CREAT", umask, func(m string) (string, error) {
					p := j(m, tag+"-file")
					fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, mode)
					if err != nil {
						return "", err
					}
					defer unix.Close(fd)
					ls, err := lstat(p)
					return "lstat=" + ls + " fstat=" + fstat(fd), err
				})
				add(tag+" O_TMPFILE", umask, func(m string) (string, error) {
					fd, err := unix.Open(j(m, dir), unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, mode)
					if err != nil {
						return "", err
					}
					defer unix.Close(fd)
					p := j(m, tag+"-tmp")
					if err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, p, unix.AT_SYMLINK_FOLLOW); err != nil {
						return "fstat=" + fstat(fd), err
					}
					ls, err := lstat(p)
					return "lstat=" + ls + " fstat=" + fstat(fd), err
				})
				add(tag+" mkdir", umask, func(m string) (string, error) {
					p := j(m, tag+"-dir")
					if err := unix.Mkdir(p, mode); err != nil {
						return "", err
					}
					return lstat(p)
				})
				add(tag+" mkfifo", umask, func(m string) (string, error) {
					p := j(m, tag+"-fifo")
					if err := unix.Mknod(p, unix.S_IFIFO|mode, 0); err != nil {
						return "", err
					}
					return lstat(p)
				})
				add(tag+" mknod", umask, func(m string) (string, error) {
					p := j(m, tag+"-chr")
					if err := unix.Mknod(p, unix.S_IFCHR|mode, int(unix.Mkdev(1, 3))); err != nil {
						return "", err
					}
					return lstat(p)
				})
				add(tag+" link", umask, func(m string) (string, error) {
					p := j(m, tag+"-link")
					if err := unix.Link(j(m, tag+"-file"), p); err != nil {
						return "", err
					}
					return lstat(p)
				})
				add(tag+" chmod", umask, func(m string) (string, error) {
					p := j(m, tag+"-fifo")
					if err := unix.Chmod(p, mode^0o7777); err != nil {
						return "", err
					}
					return lstat(p)
				})
			}
			tag := fmt.Sprintf("%s/%03o", dir, umask)
			add(tag+" symlink", umask, func(m string) (string, error) {
				p := j(m, tag+"-sym")
				if err := unix.Symlink("target", p); err != nil {
					return "", err
				}
				return lstat(p)
			})
		}
	}
	for _, name := range []string{"m0000", "m7777", "m4755", "d0000"} {
		steps = append(steps,
			step{name: "lower " + name, fn: func(m string) (string, error) { return lstat(j(m, name)) }},
			step{name: "copy up " + name + " by chown", fn: func(m string) (string, error) {
				if err := unix.Lchown(j(m, name), 7, 8); err != nil {
					return "", err
				}
				return lstat(j(m, name))
			}},
			step{name: "chmod " + name + " to 0", fn: func(m string) (string, error) {
				if err := unix.Chmod(j(m, name), 0); err != nil {
					return "", err
				}
				return lstat(j(m, name))
			}},
		)
	}
	steps = append(steps, step{name: "copy up by open for write", fn: func(m string) (string, error) {
		if err := unix.Chmod(j(m, "m7777"), 0o7777); err != nil {
			return "", err
		}
		fd, err := unix.Open(j(m, "m4755"), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return "", err
		}
		defer unix.Close(fd)
		ls, err := lstat(j(m, "m4755"))
		return "lstat=" + ls + " fstat=" + fstat(fd), err
	}})
	return steps
}

// TestChownNothing chowns to -1, -1 (as pjdfstest chown/00 does): the
// kernel's overlay changes ctime (and drops set-user-ID of a file, as any
// chown does), for an upper and a lower file and directory; ours must too.
func TestChownNothing(t *testing.T) {
	requireMount(t)
	lower := filepath.Join(t.TempDir(), "lower")
	if err := os.MkdirAll(filepath.Join(lower, "ldir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "lfile"), []byte("l"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lfile", "ldir"} {
		if err := unix.Chmod(filepath.Join(lower, name), 0o6755); err != nil {
			t.Fatal(err)
		}
	}
	var steps []step
	steps = append(steps, step{name: "make ufile, udir", fn: func(m string) (string, error) {
		if err := writeFile(j(m, "ufile"), unix.O_CREAT|unix.O_WRONLY, "u"); err != nil {
			return "", err
		}
		if err := unix.Chmod(j(m, "ufile"), 0o6755); err != nil {
			return "", err
		}
		if err := unix.Mkdir(j(m, "udir"), 0o755); err != nil {
			return "", err
		}
		return "", unix.Chmod(j(m, "udir"), 0o6755)
	}})
	for _, name := range []string{"ufile", "udir", "lfile", "ldir"} {
		steps = append(steps, step{name: "chown -1 -1 " + name, fn: func(m string) (string, error) {
			var st1, st2 unix.Stat_t
			if err := unix.Lstat(j(m, name), &st1); err != nil {
				return "", err
			}
			time.Sleep(20 * time.Millisecond)
			if err := unix.Chown(j(m, name), -1, -1); err != nil {
				return "", err
			}
			if err := unix.Lstat(j(m, name), &st2); err != nil {
				return "", err
			}
			return fmt.Sprintf("ctime changed=%v mode=%o", st1.Ctim != st2.Ctim, st2.Mode), nil
		}})
	}
	diffSteps(t, lower, steps)
}
