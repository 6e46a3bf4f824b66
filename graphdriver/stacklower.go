package graphdriver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/gonydus/nydus/overlay"
)

// stackLower is the read-only view of a layer chain as kernel overlayfs
// shows its lower dirs: the topmost name wins, directories merge until an
// opaque one (trusted.overlay.opaque=y), a whiteout (a character device
// 0/0) hides the name below it, and overlayfs' own xattrs are hidden. It
// is the lower tree of the userspace container layer.
type stackLower struct {
	layers []overlay.Lower // same name, topmost first; more than one only for directories
	index  []int           // each layer's position in the chain, for inode numbers
	shift  *idShift        // owners to map, per layer position (nil: none)
}

// idShift maps the owners of the layers it names from container ids to
// host ids (user-namespace remapping of layers stored unshifted: nydus
// layers); an id outside the maps becomes the overflow id 65534.
type idShift struct {
	UIDMaps, GIDMaps []IDMap
	Layers           []bool // by position in the chain
}

func (m *idShift) apply(layer int, st *overlay.Stat) {
	if m == nil || layer >= len(m.Layers) || !m.Layers[layer] {
		return
	}
	st.UID, st.GID = shiftID(m.UIDMaps, st.UID), shiftID(m.GIDMaps, st.GID)
}

func shiftID(maps []IDMap, id uint32) uint32 {
	if h := hostID(maps, int(id)); h >= 0 {
		return uint32(h)
	}
	return 65534
}

// layerInoShift leaves 46 bits of a layer's inode number and puts the
// layer's position above them: numbers stay unique across layers and
// inside the overlay's 54-bit lower field.
const layerInoShift = 46

// newStackLower stacks the trees at dirs (topmost first).
func newStackLower(dirs []string, shift *idShift) (overlay.Lower, error) {
	s := &stackLower{shift: shift}
	for i, d := range dirs {
		l, err := overlay.NewDirLower(d)
		if err != nil {
			return nil, err
		}
		s.layers = append(s.layers, l)
		s.index = append(s.index, i)
		if i == len(dirs)-1 {
			break
		}
		opaque, err := isOpaque(context.Background(), l)
		if err != nil {
			return nil, err
		}
		if opaque {
			break
		}
	}
	return s, nil
}

func encodeIno(layer int, ino uint64) uint64 {
	return uint64(layer)<<layerInoShift | ino&(1<<layerInoShift-1)
}

func isWhiteout(st overlay.Stat) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func isOpaque(ctx context.Context, l overlay.Lower) (bool, error) {
	xs, err := l.Xattrs(ctx)
	if err != nil {
		return false, err
	}
	for _, x := range xs {
		if x.Name == "trusted.overlay.opaque" && string(x.Value) == "y" {
			return true, nil
		}
	}
	return false, nil
}

func (s *stackLower) Stat(ctx context.Context) (overlay.Stat, error) {
	st, err := s.layers[0].Stat(ctx)
	if err != nil {
		return st, err
	}
	st.Ino = encodeIno(s.index[0], st.Ino)
	s.shift.apply(s.index[0], &st)
	if len(s.layers) > 1 {
		// A directory merged from several layers: kernel overlayfs does not
		// count its subdirectories across layers and reports one link.
		st.Nlink = 1
	}
	return st, nil
}

func (s *stackLower) Lookup(ctx context.Context, name string) (overlay.Lower, error) {
	out := &stackLower{shift: s.shift}
	for i, l := range s.layers {
		c, err := l.Lookup(ctx, name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		st, err := c.Stat(ctx)
		if err != nil {
			return nil, err
		}
		if isWhiteout(st) {
			break
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if len(out.layers) == 0 {
				out.layers, out.index = []overlay.Lower{c}, []int{s.index[i]}
			}
			break // a file hides whatever is below; a directory above hides it
		}
		out.layers, out.index = append(out.layers, c), append(out.index, s.index[i])
		opaque, err := isOpaque(ctx, c)
		if err != nil {
			return nil, err
		}
		if opaque {
			break
		}
	}
	if len(out.layers) == 0 {
		return nil, fmt.Errorf("lookup %q: %w", name, fs.ErrNotExist)
	}
	return out, nil
}

func (s *stackLower) ReadDir(ctx context.Context) ([]overlay.DirEntry, error) {
	seen := map[string]bool{}
	var out []overlay.DirEntry
	for i, l := range s.layers {
		ents, err := l.ReadDir(ctx)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if seen[e.Name] {
				continue
			}
			seen[e.Name] = true
			if e.Mode&unix.S_IFMT == unix.S_IFCHR {
				c, err := l.Lookup(ctx, e.Name)
				if err != nil {
					return nil, err
				}
				st, err := c.Stat(ctx)
				if err != nil {
					return nil, err
				}
				if isWhiteout(st) {
					continue
				}
			}
			e.Ino = encodeIno(s.index[i], e.Ino)
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *stackLower) Readlink(ctx context.Context) (string, error) { return s.layers[0].Readlink(ctx) }

func (s *stackLower) Xattrs(ctx context.Context) ([]overlay.Xattr, error) {
	xs, err := s.layers[0].Xattrs(ctx)
	if err != nil {
		return nil, err
	}
	out := xs[:0]
	for _, x := range xs {
		if !strings.HasPrefix(x.Name, "trusted.overlay.") {
			out = append(out, x)
		}
	}
	return out, nil
}

func (s *stackLower) Open(ctx context.Context) (overlay.LowerFile, error) {
	return s.layers[0].Open(ctx)
}
