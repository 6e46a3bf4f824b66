// Package mountopt turns the options containerd and nydus-snapshotter hand
// to a "fuse.nydus-overlayfs" mount into a kernel overlayfs mount: Nydus-
// and Kata-specific options are dropped, flag words become mount(2) flags
// (setting or clearing them, as mount(8) does), and everything else is
// overlayfs data.
package mountopt

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// flagWord says what one option word does to the mount flags.
type flagWord struct {
	clear bool
	flag  uintptr
}

// flagWords is mount(8)'s table (the same as containerd's): a word sets
// its flag, its inverse clears it.
var flagWords = map[string]flagWord{
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

// ExtraOption is the decoded extraoption= value nydus-snapshotter adds.
type ExtraOption struct {
	Source      string `json:"source"`
	Config      string `json:"config"`
	Snapshotdir string `json:"snapshotdir"`
	Version     string `json:"fs_version"`
}

// Mount is a parsed helper invocation.
type Mount struct {
	Target string
	Flags  uintptr
	// Data is the overlayfs option string (lowerdir=…,upperdir=…,…).
	Data []string
	// Extra is the decoded extraoption, when present.
	Extra *ExtraOption
	// Dropped lists options removed because they are not for the kernel.
	Dropped []string
	// Overlay is the nydus.overlay= choice: "" (kernel overlayfs, falling
	// back to the userspace overlay when the kernel has none), "kernel",
	// or "userspace" (nydusd's writable overlay over the extraoption image).
	Overlay string
}

// ErrUsage reports a malformed command line or option.
var ErrUsage = errors.New("nydus-overlayfs: invalid invocation")

// ParseArgs parses `overlay TARGET -o OPTIONS` (the arguments after the
// program name) as mount.fuse3 passes them.
func ParseArgs(args []string) (*Mount, error) {
	if len(args) != 4 {
		return nil, fmt.Errorf("%w: want `overlay TARGET -o OPTIONS`, got %d arguments", ErrUsage, len(args))
	}
	// mount(8) canonicalizes a source that names an existing path, so
	// "overlay" may arrive as /some/cwd/overlay.
	if args[0] != "overlay" && filepath.Base(args[0]) != "overlay" {
		return nil, fmt.Errorf("%w: source must be \"overlay\", got %q", ErrUsage, args[0])
	}
	if args[1] == "" {
		return nil, fmt.Errorf("%w: empty target", ErrUsage)
	}
	if args[2] != "-o" {
		return nil, fmt.Errorf("%w: third argument must be -o, got %q", ErrUsage, args[2])
	}
	m := &Mount{Target: args[1]}
	for _, opt := range strings.Split(args[3], ",") {
		if opt == "" {
			continue
		}
		key, val, hasVal := strings.Cut(opt, "=")
		switch {
		case key == "extraoption":
			e, err := decodeExtra(val)
			if err != nil {
				return nil, fmt.Errorf("%w: extraoption: %w", ErrUsage, err)
			}
			m.Extra = e
			m.Dropped = append(m.Dropped, key)
			continue
		case strings.HasPrefix(key, "io.katacontainers."):
			m.Dropped = append(m.Dropped, key)
			continue
		case key == "nydus.overlay":
			if val != "kernel" && val != "userspace" {
				return nil, fmt.Errorf("%w: nydus.overlay=%q: want kernel or userspace", ErrUsage, val)
			}
			m.Overlay = val
			m.Dropped = append(m.Dropped, key)
			continue
		}
		if f, ok := flagWords[opt]; ok && !hasVal {
			if f.clear {
				m.Flags &^= f.flag
			} else {
				m.Flags |= f.flag
			}
			continue
		}
		if hasVal && val == "" {
			return nil, fmt.Errorf("%w: option %q has an empty value", ErrUsage, key)
		}
		m.Data = append(m.Data, opt)
	}
	if !m.has("lowerdir") {
		return nil, fmt.Errorf("%w: no lowerdir= option (an overlay needs at least one lower directory)", ErrUsage)
	}
	if m.has("upperdir") != m.has("workdir") {
		return nil, fmt.Errorf("%w: upperdir= and workdir= go together", ErrUsage)
	}
	return m, nil
}

func (m *Mount) has(key string) bool {
	for _, d := range m.Data {
		if strings.HasPrefix(d, key+"=") {
			return true
		}
	}
	return false
}

func decodeExtra(v string) (*ExtraOption, error) {
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, errors.New("not base64")
	}
	var e ExtraOption
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, errors.New("not JSON")
	}
	return &e, nil
}

// DataString joins the overlay data options.
func (m *Mount) DataString() string { return strings.Join(m.Data, ",") }

// Compact rewrites lowerdir/upperdir/workdir relative to their longest
// common parent directory and returns that directory, for option strings
// too long for one page (the caller chdirs there before mount(2)). It
// returns "" when nothing can be shortened.
func (m *Mount) Compact() string {
	var dirs []string
	for _, d := range m.Data {
		key, val, _ := strings.Cut(d, "=")
		switch key {
		case "lowerdir":
			dirs = append(dirs, strings.Split(val, ":")...)
		case "upperdir", "workdir":
			dirs = append(dirs, val)
		}
	}
	common := commonDir(dirs)
	if common == "" || common == "/" {
		return ""
	}
	rel := func(p string) string {
		r, err := filepath.Rel(common, p)
		if err != nil {
			return p
		}
		return r
	}
	for i, d := range m.Data {
		key, val, _ := strings.Cut(d, "=")
		switch key {
		case "lowerdir":
			parts := strings.Split(val, ":")
			for k := range parts {
				parts[k] = rel(parts[k])
			}
			m.Data[i] = key + "=" + strings.Join(parts, ":")
		case "upperdir", "workdir":
			m.Data[i] = key + "=" + rel(val)
		}
	}
	return common
}

// commonDir returns the deepest directory containing all absolute paths.
func commonDir(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	common := filepath.Dir(filepath.Clean(paths[0]))
	for _, p := range paths {
		p = filepath.Clean(p)
		if !filepath.IsAbs(p) {
			return ""
		}
		for common != "/" && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	return common
}

// Value returns the value of data option key ("" when absent).
func (m *Mount) Value(key string) string {
	for _, d := range m.Data {
		if v, ok := strings.CutPrefix(d, key+"="); ok {
			return v
		}
	}
	return ""
}
