package graphdriver

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	Point  string
	FSType string
}

// mountsUnder lists the mounts at or below dir.
func mountsUnder(dir string) ([]mountEntry, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("graphdriver: %w", err)
	}
	var out []mountEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(f) {
			continue
		}
		p := unescapeMountPath(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, mountEntry{Point: p, FSType: f[sep+1]})
		}
	}
	return out, sc.Err()
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountedAt returns the filesystem type mounted exactly at dir, or "".
func mountedAt(dir string) (string, error) {
	ms, err := mountsUnder(filepath.Clean(dir))
	if err != nil {
		return "", err
	}
	fstype := ""
	for _, m := range ms {
		if m.Point == dir {
			fstype = m.FSType // the last one is the top of a stack
		}
	}
	return fstype, nil
}

// unmountIfMounted unmounts everything at dir (lazily when busy).
func unmountIfMounted(dir string) error {
	for range 8 {
		t, err := mountedAt(dir)
		if err != nil || t == "" {
			return err
		}
		if err := unix.Unmount(dir, 0); err != nil {
			if errors.Is(err, unix.EBUSY) {
				err = unix.Unmount(dir, unix.MNT_DETACH)
			}
			if err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("graphdriver: unmount %s: %w", dir, err)
			}
		}
	}
	return fmt.Errorf("graphdriver: %s stays mounted", dir)
}
